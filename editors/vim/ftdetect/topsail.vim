" Detect topsail pipelines by extension.
autocmd BufRead,BufNewFile *.topsail setfiletype topsail
