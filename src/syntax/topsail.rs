//! The `.topsail` front end: pest grammar -> AST.
use crate::diagnostics::Diagnostic;
use crate::syntax::{FileId, SourceMap, ast};

pub fn parse(sources: &SourceMap, file: FileId) -> (Option<ast::Module>, Vec<Diagnostic>) {
    let _ = (sources, file);
    todo!("issue 2: .topsail parser")
}
