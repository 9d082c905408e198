#!/usr/bin/env python3
"""The one source of truth for highlighting `.topsail` files.

This script holds the lexical rules of LANGUAGE.md (keywords, names,
strings with `{{ }}` holes, durations, `when` operators, `run` text as
embedded shell) once, and writes the three editor grammars from them:

    editors/vscode/syntaxes/topsail.tmLanguage.json   (VS Code, TextMate engines)
    editors/sublime/topsail.sublime-syntax            (Sublime Text, bat, syntect)
    editors/vim/syntax/topsail.vim                    (vim / neovim)

Run it after changing a rule:   python3 editors/grammar/generate.py
`--check` writes nothing and exits 1 if a committed file differs from what
this script would write; the Rust test `editors::generated_grammars_are_current`
runs that, so the three files cannot drift from each other or from here.
Standard library only, so it runs with any python3.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- lexical atoms
NAME = r"[A-Za-z_][A-Za-z0-9_-]*"  # steps, params, outputs, loop variables
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"  # secrets and env names
WS = r"[ \t]"
IND = r"^([ \t]+)"  # a body line (directive); group 1 is its indentation
TYPES = ["string", "int", "bool", "duration", "list"]
DURATION_UNITS = ["ms", "s", "m", "h", "d"]
DECLARATIONS = ["pipeline", "param", "secret", "image", "env", "import", "template", "queue"]
# Every directive of LANGUAGE.md section 4.
DIRECTIVES = [
    "image", "run", "shell", "env", "workdir", "output", "secret", "timeout",
    "heartbeat", "retry", "when", "foreach", "approval", "catch", "use", "queue", "aws",
]
# Directives whose value is just literals (strings, durations, numbers).
VALUE_DIRECTIVES = ["image", "shell", "workdir", "approval", "timeout", "heartbeat", "queue", "aws"]
MAX_INDENT = 16  # deepest `run:` block indentation recognised
SHELL_TM = "source.shell"  # VS Code's shellscript grammar
SHELL_SUBLIME = "scope:source.shell.bash"  # Sublime's and bat's Bash syntax

# ---------------------------------------------------------------- scopes
S = {
    "comment": "comment.line.number-sign.topsail",
    "comment_punct": "punctuation.definition.comment.topsail",
    "decl": "keyword.declaration.{}.topsail",
    "pipeline_name": "entity.name.namespace.pipeline.topsail",
    "param": "variable.parameter.topsail",
    "type": "storage.type.topsail",
    "type_sep": "punctuation.separator.type.topsail",
    "assign": "keyword.operator.assignment.topsail",
    "secret": "variable.other.constant.secret.topsail",
    "env": "variable.other.env.topsail",
    "as": "keyword.control.as.topsail",
    "alias": "entity.name.namespace.topsail",
    "template": "entity.name.function.template.topsail",
    "step": "entity.name.function.step.topsail",
    "step_sep": "punctuation.separator.step.topsail",
    "need": "variable.function.step.topsail",
    "directive": "keyword.other.directive.{}.topsail",
    "retry_word": "keyword.other.retry.topsail",
    "in": "keyword.control.in.topsail",
    "output": "variable.other.output.topsail",
    "loop": "variable.other.loop.topsail",
    "ref": "variable.other.reference.topsail",
    "dot": "punctuation.accessor.dot.topsail",
    "string": "string.quoted.double.topsail",
    "str_begin": "punctuation.definition.string.begin.topsail",
    "str_end": "punctuation.definition.string.end.topsail",
    "escape": "constant.character.escape.topsail",
    "bad_escape": "invalid.illegal.escape.topsail",
    "hole": "meta.interpolation.topsail",
    "hole_begin": "punctuation.section.interpolation.begin.topsail",
    "hole_end": "punctuation.section.interpolation.end.topsail",
    "duration": "constant.numeric.duration.topsail",
    "float": "constant.numeric.float.topsail",
    "int": "constant.numeric.integer.topsail",
    "bool": "constant.language.boolean.topsail",
    "cmp": "keyword.operator.comparison.topsail",
    "logic": "keyword.operator.logical.topsail",
    "paren_begin": "punctuation.section.parens.begin.topsail",
    "paren_end": "punctuation.section.parens.end.topsail",
    "list_begin": "punctuation.section.brackets.begin.topsail",
    "list_end": "punctuation.section.brackets.end.topsail",
    "comma": "punctuation.separator.comma.topsail",
    "list": "meta.sequence.list.topsail",
    "args": "meta.arguments.topsail",
    "run_block": "meta.embedded.block.shell.topsail",
    "run_line": "meta.embedded.line.shell.topsail",
    "run_colon": "punctuation.section.block.begin.topsail",
    "step_header": "meta.step.header.topsail",
}


def alt(words):
    return "(?:" + "|".join(words) + ")"


def cap(*scopes):
    """Captures 1..n, skipping None."""
    return {str(i): s for i, s in enumerate(scopes, 1) if s}


def cap0(scope):
    """The whole match (for a delimiter)."""
    return {"0": scope}


# ---------------------------------------------------------------- the rules
# A neutral form close to TextMate: `match`+`captures`, or `begin`/`end` with
# `patterns`; `embed_shell` marks where the shell grammar is included. Order
# matters (first match wins), as in every TextMate engine.
REPO = {
    "comment": [{"match": r"(#).*$", "name": S["comment"], "captures": cap(S["comment_punct"])}],
    "escape": [
        {"match": r'\\["\\nt]', "name": S["escape"]},
        {"match": r"\\.", "name": S["bad_escape"]},
    ],
    "hole": [{
        "begin": r"\{\{", "end": r"\}\}", "name": S["hole"],
        "beginCaptures": cap0(S["hole_begin"]), "endCaptures": cap0(S["hole_end"]),
        "patterns": ["plain_string", "reference"],
    }],
    "reference": [
        {"match": rf"({NAME})(?:(\.)({NAME}))?", "captures": cap(S["ref"], S["dot"], S["ref"])},
    ],
    "string": [{
        "begin": '"', "end": '"', "name": S["string"],
        "beginCaptures": cap0(S["str_begin"]), "endCaptures": cap0(S["str_end"]),
        "patterns": ["escape", "hole"],
    }],
    # Inside `{{ }}` a string is literal text (`{{ "{{" }}` writes `{{`): no holes.
    "plain_string": [{
        "begin": '"', "end": '"', "name": S["string"],
        "beginCaptures": cap0(S["str_begin"]), "endCaptures": cap0(S["str_end"]),
        "patterns": ["escape"],
    }],
    "duration": [{"match": rf"\b\d+{alt(DURATION_UNITS)}\b", "name": S["duration"]}],
    "number": [
        {"match": r"(?<![\w.])-?\d+\.\d+\b", "name": S["float"]},
        {"match": r"(?<![\w.])-?\d+\b", "name": S["int"]},
    ],
    "boolean": [{"match": r"\b(?:true|false)\b", "name": S["bool"]}],
    "list": [{
        "begin": r"\[", "end": r"\]", "name": S["list"],
        "beginCaptures": cap0(S["list_begin"]), "endCaptures": cap0(S["list_end"]),
        "patterns": ["values", "comma"],
    }],
    "comma": [{"match": ",", "name": S["comma"]}],
    "values": ["string", "list", "duration", "number", "boolean"],
    "assign": [{"match": "=", "name": S["assign"]}],
    # `NAME[: TYPE] [= DEFAULT]` after `param`, and in a template's parameter list.
    "param_tail": [
        {"match": rf"(:){WS}*({NAME})", "captures": cap(S["type_sep"], S["type"])},
        "assign", "values", "comment",
    ],
    "template_params": [
        {"match": rf"({NAME}){WS}*(?=[=,)])", "captures": cap(S["param"])},
        {"match": rf"({NAME})", "captures": cap(S["param"])},
        "assign", "values", "comma",
    ],
    "expression": [
        "comment", "string", "duration", "number", "boolean",
        {"match": r"==|!=", "name": S["cmp"]},
        {"match": r"&&|\|\||!", "name": S["logic"]},
        {"match": r"\(", "name": S["paren_begin"]},
        {"match": r"\)", "name": S["paren_end"]},
        "reference",
    ],
    # ---- top-level declarations (column 0)
    "declarations": [
        {"match": rf"^(pipeline)\b(?:{WS}+({NAME}))?",
         "captures": cap(S["decl"].format("pipeline"), S["pipeline_name"])},
        {"begin": rf"^(param)\b(?:{WS}+({NAME}))?", "end": "$",
         "beginCaptures": cap(S["decl"].format("param"), S["param"]), "patterns": ["param_tail"]},
        {"match": rf"^(secret)\b(?:{WS}+({ENV_NAME}))?",
         "captures": cap(S["decl"].format("secret"), S["secret"])},
        {"begin": r"^(image)\b", "end": "$",
         "beginCaptures": cap(S["decl"].format("image")), "patterns": ["values", "comment"]},
        {"begin": r"^(queue)\b", "end": "$",
         "beginCaptures": cap(S["decl"].format("queue")), "patterns": ["values", "comment"]},
        {"begin": rf"^(env)\b(?:{WS}+({ENV_NAME}))?", "end": "$",
         "beginCaptures": cap(S["decl"].format("env"), S["env"]),
         "patterns": ["assign", "values", "comment"]},
        {"begin": r"^(import)\b", "end": "$", "beginCaptures": cap(S["decl"].format("import")),
         "patterns": [
             "string",
             {"match": rf"\b(as)\b(?:{WS}+({NAME}))?", "captures": cap(S["as"], S["alias"])},
             "comment",
         ]},
        {"begin": rf"^(template)\b(?:{WS}+({NAME}))?{WS}*(\()?",
         "end": rf"(\)){WS}*(:)|$",
         "beginCaptures": cap(S["decl"].format("template"), S["template"], S["paren_begin"]),
         "endCaptures": cap(S["paren_end"], S["step_sep"]),
         "patterns": ["template_params"]},
    ],
    # `NAME: NEEDS...` in column 0.
    "step_header": [{
        "begin": rf"^({NAME}){WS}*(:)(?=\s|$)", "end": "$", "name": S["step_header"],
        "beginCaptures": cap(S["step"], S["step_sep"]),
        "patterns": ["comment", {"match": NAME, "name": S["need"]}],
    }],
    # ---- step and template bodies (indented lines)
    "directives": [
    ] + [
        # A `run:` block ends at the first non-blank line indented no deeper
        # than `run` itself. That needs the indentation of `run` in `end`: a
        # backreference would do, but not every TextMate engine supports one
        # in `end`, so there is one rule per indentation width instead.
        {"begin": rf"^( {{{n}}})(run){WS}*(:){WS}*((#).*)?$", "end": rf"^(?! {{{n}}}{WS})(?=[ \t]*\S)",
         "beginCaptures": cap(None, S["directive"].format("run"), S["run_colon"], S["comment"],
                              S["comment_punct"]),
         "contentName": S["run_block"], "patterns": ["hole", "embed_shell"]}
        for n in range(1, MAX_INDENT + 1)
    ] + [
        {"begin": rf"{IND}(run)\b{WS}*(?=\S)", "end": "$",
         "beginCaptures": cap(None, S["directive"].format("run")),
         "contentName": S["run_line"], "patterns": ["hole", "embed_shell"]},
        {"begin": rf"{IND}(env)\b(?:{WS}+({ENV_NAME}))?", "end": "$",
         "beginCaptures": cap(None, S["directive"].format("env"), S["env"]),
         "patterns": ["assign", "values", "comment"]},
        {"match": rf"{IND}(output)\b(?:{WS}+({NAME}))?",
         "captures": cap(None, S["directive"].format("output"), S["output"])},
        {"match": rf"{IND}(secret)\b(?:{WS}+({ENV_NAME}))?",
         "captures": cap(None, S["directive"].format("secret"), S["secret"])},
        {"match": rf"{IND}(catch)\b(?:{WS}+({NAME}))?",
         "captures": cap(None, S["directive"].format("catch"), S["need"])},
        {"begin": rf"{IND}(foreach)\b(?:{WS}+({NAME}))?(?:{WS}+(in)\b)?", "end": "$",
         "beginCaptures": cap(None, S["directive"].format("foreach"), S["loop"], S["in"]),
         "patterns": ["values", "comment", "reference"]},
        {"begin": rf"{IND}(when)\b", "end": "$",
         "beginCaptures": cap(None, S["directive"].format("when")), "patterns": ["expression"]},
        {"begin": rf"{IND}(retry)\b", "end": "$",
         "beginCaptures": cap(None, S["directive"].format("retry")),
         "patterns": [{"match": r"\b(?:every|backoff)\b", "name": S["retry_word"]},
                      "values", "comment"]},
        {"begin": rf"{IND}(use)\b(?:{WS}+({NAME})(?:(\.)({NAME}))?)?{WS}*(\()?",
         "end": r"(\))|$",
         "beginCaptures": cap(None, S["directive"].format("use"), S["template"], S["dot"],
                              S["template"], S["paren_begin"]),
         "endCaptures": cap(S["paren_end"]), "contentName": S["args"],
         "patterns": ["template_params"]},
    ] + [
        {"begin": rf"{IND}({d})\b", "end": "$", "beginCaptures": cap(None, S["directive"].format(d)),
         "patterns": ["values", "comment"]}
        for d in VALUE_DIRECTIVES
    ],
}
TOP = ["comment", "declarations", "step_header", "directives"]


# ---------------------------------------------------------------- TextMate
def tm_rule(rule, shell):
    if isinstance(rule, str):
        if rule == "embed_shell":
            return {"include": shell}
        return {"include": "#" + rule}
    out = {}
    for key in ("name", "contentName", "match", "begin", "end"):
        if key in rule:
            out[key] = rule[key]
    for key in ("captures", "beginCaptures", "endCaptures"):
        if key in rule:
            out[key] = {k: {"name": v} for k, v in rule[key].items()}
    if "patterns" in rule:
        out["patterns"] = [tm_rule(p, shell) for p in rule["patterns"]]
    return out


def textmate():
    repo = {}
    for key, rules in REPO.items():
        repo[key] = {"patterns": [tm_rule(r, SHELL_TM) for r in rules]}
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "topsail",
        "scopeName": "source.topsail",
        "fileTypes": ["topsail"],
        "comment": "Generated by editors/grammar/generate.py; do not edit by hand.",
        "patterns": [{"include": "#" + k} for k in TOP],
        "repository": repo,
        # Holes are substituted everywhere in run text, also inside the shell's
        # own strings, so they are injected into the embedded shell.
        "injections": {
            f"L:{S['run_block']}, L:{S['run_line']}": {"patterns": [{"include": "#hole"}]},
        },
    }


# ---------------------------------------------------------------- Sublime
def sub_caps(caps, out):
    """Sublime: the whole match is `scope`, groups are `captures`."""
    groups = {int(k): v for k, v in caps.items() if k != "0"}
    if "0" in caps:
        out["scope"] = caps["0"]
    if groups:
        out["captures"] = groups


class Sublime:
    def __init__(self):
        self.contexts = {}
        self.count = 0

    def rule(self, rule, parent_end=None):
        if isinstance(rule, str):
            if rule == "embed_shell":
                return {"include": SHELL_SUBLIME}
            return {"include": rule}
        if "match" in rule:
            out = {"match": rule["match"]}
            if "name" in rule:
                out["scope"] = rule["name"]
            if "captures" in rule:
                sub_caps(rule["captures"], out)
            return out
        ctx = []
        if "name" in rule:
            ctx.append({"meta_scope": rule["name"]})
        if "contentName" in rule:
            ctx.append({"meta_content_scope": rule["contentName"]})
        end = {"match": rule["end"], "pop": True}
        if "endCaptures" in rule:
            sub_caps(rule["endCaptures"], end)
        ctx.append(end)
        embeds = "embed_shell" in rule.get("patterns", [])
        for p in rule.get("patterns", []):
            if p != "embed_shell":
                ctx.append(self.rule(p))
        out = {"match": rule["begin"]}
        if "beginCaptures" in rule:
            sub_caps(rule["beginCaptures"], out)
        if embeds:
            # Bash's contexts get the holes and our end through
            # with_prototype (its backreferences are to `begin`), so `{{ }}`
            # inside shell strings still shows, and an unclosed quote cannot
            # swallow the next directive.
            self.count += 1
            name = f"run-{self.count}"
            ctx.append({"include": SHELL_SUBLIME})
            self.contexts[name] = ctx
            out["push"] = name
            out["with_prototype"] = [
                {"match": f"(?={rule['end']})", "pop": True},
                {"include": "hole"},
            ]
        else:
            out["push"] = ctx
        return out

    def build(self):
        contexts = {"main": [{"include": k} for k in TOP]}
        for key, rules in REPO.items():
            contexts[key] = [self.rule(r) for r in rules]
        contexts.update(self.contexts)
        return {
            "name": "topsail",
            "file_extensions": ["topsail"],
            "scope": "source.topsail",
            "contexts": contexts,
        }


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def yaml_dump(v, indent=0):
    pad = "  " * indent
    lines = []
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                lines.append(f"{pad}{k}:")
                lines.extend(yaml_dump(x, indent + 1))
            else:
                lines.append(f"{pad}{k}: {yaml_scalar(x) if x != [] else '[]'}")
    else:
        for x in v:
            if isinstance(x, (dict, list)):
                sub = yaml_dump(x, indent + 1)
                first = sub[0].lstrip()
                lines.append(f"{pad}- {first}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {yaml_scalar(x)}")
    return lines


def sublime():
    head = ["%YAML 1.2", "---",
            "# Generated by editors/grammar/generate.py; do not edit by hand.",
            "# https://www.sublimetext.com/docs/syntax.html"]
    return "\n".join(head + yaml_dump(Sublime().build())) + "\n"


# ---------------------------------------------------------------- vim
def vim():
    """Vim's regexes differ from Oniguruma, so this emits vim patterns for the
    same atoms; the keyword lists and the highlight groups come from above."""
    vname = r"[A-Za-z_][A-Za-z0-9_-]*"
    venv = r"[A-Za-z_][A-Za-z0-9_]*"
    units = r"\%(" + r"\|".join(DURATION_UNITS) + r"\)"
    others = [d for d in DIRECTIVES if d not in ("run", "env", "output", "secret", "catch",
                                                 "foreach", "when", "retry", "use")]
    L = [
        '" Vim syntax file for topsail pipelines (.topsail).',
        '" Generated by editors/grammar/generate.py; do not edit by hand.',
        'if exists("b:current_syntax")', "  finish", "endif", "",
        "let s:cpo_save = &cpo", "set cpo&vim", "",
        '" run text is shell: embed sh.vim as @topsailShell.',
        "let s:had_syntax = exists('b:current_syntax')",
        "syntax include @topsailShell syntax/sh.vim",
        "unlet! b:current_syntax",
        '" Holes inside the shell\'s own quotes and echo arguments stay holes.',
        "syntax cluster shDblQuoteList add=topsailHole",
        "syntax cluster shEchoList add=topsailHole",
        "syntax cluster shCommandSubList add=topsailHole", "",
        "syntax case match",
        r'syntax match topsailComment "#.*$" contains=@Spell',
        r'syntax match topsailEscape contained "\\[\"\\nt]"',
        r'syntax match topsailRef contained "' + vname + r'\%(\.' + vname + r'\)\="',
        r'syntax region topsailHole matchgroup=topsailHoleDelim start="{{" end="}}" contains=topsailString,topsailRef oneline',
        r'syntax region topsailString start=+"+ skip=+\\\\\|\\"+ end=+"+ contains=topsailEscape,topsailHole oneline',
        r'syntax match topsailDuration "\<\d\+' + units + r'\>"',
        r'syntax match topsailNumber "\<-\=\d\+\%(\.\d\+\)\=\>"',
        r'syntax keyword topsailBoolean true false',
        r'syntax match topsailOperator "==\|!=\|&&\|||\|!"',
        "",
        '" top-level declarations (column 0)',
        r'syntax match topsailDecl "^\%(' + r"\|".join(DECLARATIONS) + r'\)\>" nextgroup=topsailDeclName skipwhite',
        r'syntax match topsailDeclName contained "' + vname + r'"',
        r'syntax match topsailType ":\s*\zs\%(' + r"\|".join(TYPES) + r'\)\>"',
        r'syntax match topsailAs "\<as\>" nextgroup=topsailDeclName skipwhite',
        "",
        '" step headers: NAME: NEEDS...',
        r'syntax match topsailStepHeader "^' + vname + r'\s*:\%(\s\|$\)\@=" contains=topsailStepName nextgroup=topsailNeeds',
        r'syntax match topsailStepName contained "^' + vname + '"',
        r'syntax match topsailNeeds contained ".*" contains=topsailNeed,topsailComment',
        r'syntax match topsailNeed contained "' + vname + '"',
        "",
        '" directives (indented)',
        r'syntax match topsailDirective "^\s\+\zs\%(' + r"\|".join(others) + r'\)\>"',
        r'syntax match topsailDirective "^\s\+\zs\%(env\|secret\)\>" nextgroup=topsailEnvName skipwhite',
        r'syntax match topsailEnvName contained "' + venv + '"',
        r'syntax match topsailDirective "^\s\+\zsoutput\>" nextgroup=topsailOutput skipwhite',
        r'syntax match topsailOutput contained "' + vname + '"',
        r'syntax match topsailDirective "^\s\+\zscatch\>" nextgroup=topsailNeed skipwhite',
        r'syntax match topsailDirective "^\s\+\zsforeach\>" nextgroup=topsailLoopVar skipwhite',
        r'syntax match topsailLoopVar contained "' + vname + r'" nextgroup=topsailIn skipwhite',
        r'syntax keyword topsailIn contained in',
        r'syntax match topsailDirective "^\s\+\zswhen\>" nextgroup=topsailWhen',
        r'syntax match topsailWhen contained ".*" contains=topsailString,topsailOperator,topsailNumber,topsailBoolean,topsailDuration,topsailComment,topsailRef',
        r'syntax match topsailDirective "^\s\+\zsretry\>" nextgroup=topsailRetry',
        r'syntax match topsailRetry contained ".*" contains=topsailRetryWord,topsailDuration,topsailNumber,topsailComment',
        r'syntax keyword topsailRetryWord contained every backoff',
        r'syntax match topsailDirective "^\s\+\zsuse\>" nextgroup=topsailTemplate skipwhite',
        r'syntax match topsailTemplate contained "' + vname + r'\%(\.' + vname + r'\)\="',
        "",
        '" run TEXT and run: blocks: shell, with {{ }} holes still visible',
        r'syntax region topsailRunLine matchgroup=topsailDirective start="^\s\+\zsrun\>\s*\ze[^: \t]" end="$" contains=topsailHole,@topsailShell oneline keepend',
        r'syntax region topsailRunBlock matchgroup=topsailDirective start="^\z(\s\+\)\zsrun\s*:\s*$" end="^\%(\z1\s\)\@!\ze\s*\S" contains=topsailHole,@topsailShell keepend',
        "",
        "hi def link topsailComment Comment",
        "hi def link topsailEscape SpecialChar",
        "hi def link topsailHoleDelim Delimiter",
        "hi def link topsailRef Identifier",
        "hi def link topsailString String",
        "hi def link topsailDuration Number",
        "hi def link topsailNumber Number",
        "hi def link topsailBoolean Boolean",
        "hi def link topsailOperator Operator",
        "hi def link topsailDecl Keyword",
        "hi def link topsailDeclName Identifier",
        "hi def link topsailType Type",
        "hi def link topsailAs Keyword",
        "hi def link topsailStepName Function",
        "hi def link topsailNeed Function",
        "hi def link topsailDirective Statement",
        "hi def link topsailEnvName Constant",
        "hi def link topsailOutput Identifier",
        "hi def link topsailLoopVar Identifier",
        "hi def link topsailIn Keyword",
        "hi def link topsailRetryWord Keyword",
        "hi def link topsailTemplate Function",
        "",
        'let b:current_syntax = "topsail"',
        "let &cpo = s:cpo_save",
        "unlet s:cpo_save s:had_syntax",
    ]
    return "\n".join(L) + "\n"


OUTPUTS = {
    "vscode/syntaxes/topsail.tmLanguage.json": lambda: json.dumps(textmate(), indent=2) + "\n",
    "sublime/topsail.sublime-syntax": sublime,
    "vim/syntax/topsail.vim": vim,
}


def main(argv):
    check = "--check" in argv
    stale = []
    for rel, make in OUTPUTS.items():
        path = ROOT / rel
        text = make()
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run `python3 editors/grammar/generate.py`): " + ", ".join(
            "editors/" + s for s in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
