//! AST -> YAML text (`convert --to yaml`).
use crate::syntax::ast;

pub fn emit(module: &ast::Module) -> String {
    let _ = module;
    todo!("issue 2: YAML emitter")
}
