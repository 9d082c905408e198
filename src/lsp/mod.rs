//! `topsail lsp`: a language server over stdio. Diagnostics come from
//! `crate::check::check_source`, the same checker as `topsail check`, so the
//! editor and the command line never disagree; navigation, hover, completion
//! and symbols come from an [`index::Index`] of the open file's AST;
//! formatting is `crate::syntax::print::print`, the same as `topsail fmt`.
//!
//! One thread, synchronous (lsp-server): a check of a 2,000-step file takes
//! milliseconds, so there is nothing to gain from an async runtime. A burst
//! of edits is coalesced: the queue is drained before checking, so only the
//! latest text of a document is checked.

mod features;
pub mod index;
pub mod text;
mod transport;

use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest, Request as _,
};
use lsp_types::{
    CompletionOptions, Diagnostic as LspDiagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, Location, NumberOrString, OneOf, PublishDiagnosticsParams,
    ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind, Uri,
};

use crate::diagnostics::Severity;
use crate::source::{FileId, Format};
use text::LineIndex;

/// Open documents by URI text (`Uri` caches parts of itself inside, so it
/// cannot be a hash key).
type Docs = HashMap<String, Document>;

/// An open document: its latest text and, built on demand, its index.
pub struct Document {
    pub text: String,
    pub lines: LineIndex,
    index: Option<index::Index>,
}

impl Document {
    fn new(text: String) -> Self {
        Self {
            lines: LineIndex::new(&text),
            text,
            index: None,
        }
    }

    /// The index, built the first time a request needs it after a change
    /// (diagnostics do not need it, so typing does not pay for it).
    pub fn index(&mut self) -> &index::Index {
        self.view().0
    }

    /// The index together with the text and its line table.
    pub fn view(&mut self) -> (&index::Index, &LineIndex, &str) {
        let index = self
            .index
            .get_or_insert_with(|| index::Index::build(&self.text));
        (index, &self.lines, &self.text)
    }
}

/// What the server announces in `initialize`.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        definition_provider: Some(OneOf::Left(true)),
        hover_provider: Some(lsp_types::HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "{".into(), " ".into()]),
            ..CompletionOptions::default()
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

/// Serve on stdin/stdout until the client says `exit`.
pub fn serve() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (connection, io_threads) = transport::stdio()?;
    let caps = serde_json::to_value(capabilities())?;
    connection.initialize(caps)?;
    main_loop(&connection)?;
    drop(connection);
    io_threads.join()?;
    Ok(())
}

fn main_loop(conn: &Connection) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut docs: Docs = HashMap::new();
    let mut pending: Vec<Message> = Vec::new();
    loop {
        let msg = match pending.pop() {
            Some(m) => m,
            None => match conn.receiver.recv() {
                Ok(m) => m,
                Err(_) => return Ok(()),
            },
        };
        match msg {
            Message::Request(req) => {
                if conn.handle_shutdown(&req)? {
                    return Ok(());
                }
                let resp = handle_request(&mut docs, req);
                conn.sender.send(Message::Response(resp))?;
            }
            Message::Notification(note) => {
                let mut changed = Vec::new();
                handle_notification(&mut docs, note, &mut changed);
                // Apply every edit already queued before checking, so a burst
                // of keystrokes costs one check, of the latest text.
                while let Ok(next) = conn.receiver.try_recv() {
                    match next {
                        Message::Notification(n) => handle_notification(&mut docs, n, &mut changed),
                        other => {
                            pending.insert(0, other);
                            break;
                        }
                    }
                }
                for uri in changed {
                    publish(conn, &docs, uri)?;
                }
            }
            Message::Response(_) => {}
        }
    }
}

fn handle_notification(docs: &mut Docs, note: Notification, changed: &mut Vec<Uri>) {
    let mut touch = |uri: Uri| {
        if !changed.contains(&uri) {
            changed.push(uri);
        }
    };
    match note.method.as_str() {
        DidOpenTextDocument::METHOD => {
            if let Ok(p) =
                serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(note.params)
            {
                docs.insert(
                    p.text_document.uri.as_str().to_string(),
                    Document::new(p.text_document.text),
                );
                touch(p.text_document.uri);
            }
        }
        DidChangeTextDocument::METHOD => {
            if let Ok(p) =
                serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(note.params)
            {
                // Full sync: the last change holds the whole text.
                if let Some(change) = p.content_changes.into_iter().last() {
                    docs.insert(
                        p.text_document.uri.as_str().to_string(),
                        Document::new(change.text),
                    );
                    touch(p.text_document.uri);
                }
            }
        }
        DidSaveTextDocument::METHOD => {
            // Imported files may have changed on disk: check again.
            if let Ok(p) =
                serde_json::from_value::<lsp_types::DidSaveTextDocumentParams>(note.params)
            {
                touch(p.text_document.uri);
            }
        }
        DidCloseTextDocument::METHOD => {
            if let Ok(p) =
                serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(note.params)
            {
                docs.remove(p.text_document.uri.as_str());
                touch(p.text_document.uri);
            }
        }
        _ => {}
    }
}

/// Check a document and send its diagnostics (none for a closed one).
fn publish(conn: &Connection, docs: &Docs, uri: Uri) -> Result<(), Box<dyn Error + Send + Sync>> {
    let diagnostics = match docs.get(uri.as_str()) {
        Some(doc) => guarded(|| diagnostics(&uri, doc)).unwrap_or_else(|message| {
            vec![LspDiagnostic {
                severity: Some(DiagnosticSeverity::ERROR),
                source: Some("topsail".into()),
                message: format!("internal error while checking: {message}"),
                ..LspDiagnostic::default()
            }]
        }),
        None => Vec::new(),
    };
    let params = PublishDiagnosticsParams {
        uri,
        diagnostics,
        version: None,
    };
    let note = Notification::new(PublishDiagnostics::METHOD.to_string(), params);
    conn.sender.send(Message::Notification(note))?;
    Ok(())
}

/// The checker's diagnostics for a document, as LSP diagnostics. Problems in
/// imported files are shown on the first line, naming the file.
pub fn diagnostics(uri: &Uri, doc: &Document) -> Vec<LspDiagnostic> {
    let path = uri_to_path(uri);
    let name = path
        .as_ref()
        .map_or_else(|| uri.as_str().to_string(), |p| p.display().to_string());
    let format = path.as_deref().map_or(Format::Topsail, Format::of_path);
    let checked = crate::check::check_source(&name, path, doc.text.clone(), format);
    let root = FileId(0);
    let range = |span: crate::source::Span| {
        if span.file == root {
            doc.lines.range(&doc.text, span.start, span.end)
        } else {
            lsp_types::Range::default()
        }
    };
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let mut message = d.message.clone();
            if d.span.file != root {
                message = format!("{}: {message}", checked.sources.get(d.span.file).name);
            }
            if !d.help.is_empty() {
                message.push_str("\nhelp: ");
                message.push_str(&d.help);
            }
            let related = d
                .secondary
                .iter()
                .filter(|(s, _)| s.file == root)
                .map(|(s, text)| DiagnosticRelatedInformation {
                    location: Location::new(uri.clone(), range(*s)),
                    message: text.clone(),
                })
                .collect::<Vec<_>>();
            LspDiagnostic {
                range: range(d.span),
                severity: Some(match d.severity {
                    Severity::Error => DiagnosticSeverity::ERROR,
                    Severity::Warning => DiagnosticSeverity::WARNING,
                    Severity::Note => DiagnosticSeverity::INFORMATION,
                }),
                code: Some(NumberOrString::String(d.code.to_string())),
                source: Some("topsail".into()),
                message,
                related_information: (!related.is_empty()).then_some(related),
                ..LspDiagnostic::default()
            }
        })
        .collect()
}

fn handle_request(docs: &mut Docs, req: Request) -> Response {
    let id = req.id.clone();
    match guarded(move || dispatch(docs, req)) {
        Ok(Ok(value)) => Response::new_ok(id, value),
        Ok(Err((code, message))) => Response::new_err(id, code as i32, message),
        Err(panic) => Response::new_err(
            id,
            ErrorCode::InternalError as i32,
            format!("internal error: {panic}"),
        ),
    }
}

type Reply = Result<serde_json::Value, (ErrorCode, String)>;

fn dispatch(docs: &mut Docs, req: Request) -> Reply {
    fn params<P: serde::de::DeserializeOwned>(req: Request) -> Result<P, (ErrorCode, String)> {
        serde_json::from_value(req.params).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
    }
    fn json<T: serde::Serialize>(v: T) -> Reply {
        serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError, e.to_string()))
    }
    let unknown = |uri: &Uri| {
        (
            ErrorCode::InvalidParams,
            format!("{} is not open", uri.as_str()),
        )
    };
    match req.method.as_str() {
        GotoDefinition::METHOD => {
            let p: lsp_types::GotoDefinitionParams = params(req)?;
            let pos = p.text_document_position_params;
            let doc = docs
                .get_mut(pos.text_document.uri.as_str())
                .ok_or_else(|| unknown(&pos.text_document.uri))?;
            json(features::definition(
                doc,
                &pos.text_document.uri,
                pos.position,
            ))
        }
        HoverRequest::METHOD => {
            let p: lsp_types::HoverParams = params(req)?;
            let pos = p.text_document_position_params;
            let doc = docs
                .get_mut(pos.text_document.uri.as_str())
                .ok_or_else(|| unknown(&pos.text_document.uri))?;
            json(features::hover(doc, pos.position))
        }
        Completion::METHOD => {
            let p: lsp_types::CompletionParams = params(req)?;
            let pos = p.text_document_position;
            let doc = docs
                .get_mut(pos.text_document.uri.as_str())
                .ok_or_else(|| unknown(&pos.text_document.uri))?;
            json(features::completion(doc, pos.position))
        }
        DocumentSymbolRequest::METHOD => {
            let p: lsp_types::DocumentSymbolParams = params(req)?;
            let doc = docs
                .get_mut(p.text_document.uri.as_str())
                .ok_or_else(|| unknown(&p.text_document.uri))?;
            json(features::symbols(doc))
        }
        Formatting::METHOD => {
            let p: lsp_types::DocumentFormattingParams = params(req)?;
            let doc = docs
                .get_mut(p.text_document.uri.as_str())
                .ok_or_else(|| unknown(&p.text_document.uri))?;
            json(features::format(doc))
        }
        _ => Err((
            ErrorCode::MethodNotFound,
            format!("unsupported request {}", req.method),
        )),
    }
}

/// Run `f`, turning a panic (a checker bug) into an error message, so one bad
/// file cannot take the editor's server down.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into())
    })
}

/// The local path of a `file:` URI (percent-decoded); `None` for others
/// (unsaved buffers), which are then checked without relative imports.
pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    let rest = uri.as_str().strip_prefix("file://")?;
    // `file:///path` (empty authority) or `file://localhost/path`.
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_become_paths() {
        let uri: Uri = "file:///tmp/my%20dir/a.topsail".parse().unwrap();
        assert_eq!(
            uri_to_path(&uri),
            Some(PathBuf::from("/tmp/my dir/a.topsail"))
        );
        let untitled: Uri = "untitled:Untitled-1".parse().unwrap();
        assert_eq!(uri_to_path(&untitled), None);
    }
}
