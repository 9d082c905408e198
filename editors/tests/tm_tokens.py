#!/usr/bin/env python3
"""Tokenize files with a real TextMate engine (textmate-grammar-python, a port
of vscode-textmate) and the generated topsail grammar; print one JSON object
per line: {"line", "col", "text", "scopes"} (1-based line, 0-based column in
characters). Used by the Rust test tests/editors.rs, which checks scopes.

usage: tm_tokens.py GRAMMAR.json FILE...
"""
import json
import sys
import logging

from textmate_grammar.parsers.base import LanguageParser


def main():
    logging.disable(logging.WARNING)
    grammar = json.load(open(sys.argv[1]))
    # This engine reads `injections` keys as "LANGUAGE - EXCEPTIONS", not as
    # vscode-textmate's selectors; with no shell grammar loaded here, the
    # holes in run text are matched by the grammar's own patterns anyway.
    grammar.pop("injections", None)
    # A stand-in for VS Code's shell grammar (not on PyPI), so `source.shell`
    # resolves; run text is then scoped by our grammar alone.
    LanguageParser({"name": "shell", "scopeName": "source.shell", "patterns": []})
    parser = LanguageParser(grammar)
    for path in sys.argv[2:]:
        text = open(path).read()
        element = parser.parse_string(text)
        print(json.dumps({"file": path}))
        if element is None:
            continue
        for (line, col), token, scopes in element.flatten():
            print(json.dumps({"line": line + 1, "col": col, "text": token, "scopes": scopes}))


if __name__ == "__main__":
    main()
