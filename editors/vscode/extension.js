// The topsail extension: highlighting comes from package.json's grammar; this
// file only starts `topsail lsp` (over stdio) when the binary can be found,
// so the extension still highlights on machines without topsail installed.
"use strict";

const path = require("path");
const fs = require("fs");
const vscode = require("vscode");

let client;

function findOnPath(name) {
  if (path.isAbsolute(name)) {
    return fs.existsSync(name) ? name : undefined;
  }
  const exts = process.platform === "win32" ? (process.env.PATHEXT || ".EXE").split(";") : [""];
  for (const dir of (process.env.PATH || "").split(path.delimiter)) {
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      } catch (_) {
        // not here; keep looking
      }
    }
  }
  return undefined;
}

async function activate(context) {
  const configured = vscode.workspace.getConfiguration("topsail").get("server.path", "topsail");
  const command = findOnPath(configured);
  if (!command) {
    vscode.window.setStatusBarMessage(
      `topsail: \`${configured}\` is not on the PATH; highlighting only (no diagnostics)`,
      10000
    );
    return;
  }
  const { LanguageClient, TransportKind } = require("vscode-languageclient/node");
  const serverOptions = {
    command,
    args: ["lsp"],
    transport: TransportKind.stdio,
  };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "topsail" }, { scheme: "untitled", language: "topsail" }],
  };
  client = new LanguageClient("topsail", "topsail language server", serverOptions, clientOptions);
  context.subscriptions.push(client);
  await client.start();
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
