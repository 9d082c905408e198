//! AST -> canonical `.topsail` text (`topsail fmt`, `convert --to topsail`).
use crate::syntax::ast;

pub fn print(module: &ast::Module) -> String {
    let _ = module;
    todo!("issue 2: printer")
}
