//! The key of a step's result. Everything a result depends on goes in, each
//! part tagged and length-prefixed (no two different sets of parts hash
//! alike by running into each other), after [`KEY_FORMAT`]: a change of
//! what goes in changes the version, so an old entry is a miss, never a
//! wrong hit.
//!
//! Secrets take part by name only: their values are neither hashed (a
//! digest of a short token can be guessed back) nor written in the readable
//! form. A step that gets a different secret value still hits.

use std::fmt::Write;

use sha2::{Digest, Sha256};

/// The version of what [`Key::of`] hashes.
pub const KEY_FORMAT: u32 = 1;

/// What a step's result depends on, rendered: the same for a local run and
/// a worker.
#[derive(Clone, Debug, Default)]
pub struct Parts<'a> {
    /// The rendered script (holes as env references).
    pub script: &'a str,
    /// `None`: `sh -e`.
    pub shell: Option<&'a str>,
    /// The image by its content id (`sha256:...`), not its tag; `None`: host.
    pub image_id: Option<&'a str>,
    /// The step's env, hole values included, in the order given.
    pub env: &'a [(String, String)],
    /// Names of the secrets among `env`.
    pub secret_names: &'a [String],
    pub workdir: Option<&'a str>,
    /// The outputs the step promises.
    pub outputs: &'a [String],
    /// `(path, sha256)` of each file its `inputs` matched, sorted by path.
    pub inputs: &'a [(String, String)],
    /// `(path, sha256)` of each artifact it was given, sorted by path.
    pub artifacts: &'a [(String, String)],
}

/// A key: its digest (the record's name in the store) and a readable form
/// (what `topsail cache ls` can show, what a miss can be explained by).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub digest: String,
    pub readable: String,
}

impl Key {
    pub fn of(parts: &Parts<'_>) -> Key {
        let mut k = Builder::default();
        k.part("format", &KEY_FORMAT.to_string());
        k.part("script", parts.script);
        k.part("shell", parts.shell.unwrap_or("sh -e"));
        k.part("image", parts.image_id.unwrap_or("host"));
        k.part("workdir", parts.workdir.unwrap_or(""));
        for (name, value) in parts.env {
            if parts.secret_names.iter().any(|s| s == name) {
                k.part("secret", name);
            } else {
                k.pair("env", name, value);
            }
        }
        for name in parts.outputs {
            k.part("output", name);
        }
        for (path, digest) in parts.inputs {
            k.pair("input", path, digest);
        }
        for (path, digest) in parts.artifacts {
            k.pair("artifact", path, digest);
        }
        Key {
            digest: hex(&k.hash.finalize()),
            readable: k.readable,
        }
    }
}

#[derive(Default)]
struct Builder {
    hash: Sha256,
    readable: String,
}

impl Builder {
    fn field(&mut self, bytes: &[u8]) {
        self.hash.update((bytes.len() as u64).to_le_bytes());
        self.hash.update(bytes);
    }

    fn part(&mut self, tag: &str, value: &str) {
        self.field(tag.as_bytes());
        self.field(value.as_bytes());
        let _ = writeln!(self.readable, "{tag} {value:?}");
    }

    fn pair(&mut self, tag: &str, name: &str, value: &str) {
        self.field(tag.as_bytes());
        self.field(name.as_bytes());
        self.field(value.as_bytes());
        let _ = writeln!(self.readable, "{tag} {name:?} = {value:?}");
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn every_part_changes_the_key() {
        let e = env(&[("A", "1")]);
        let e2 = env(&[("A", "2")]);
        let inputs = vec![("src/a.c".to_string(), "d1".to_string())];
        let inputs2 = vec![("src/a.c".to_string(), "d2".to_string())];
        let outputs = vec!["V".to_string()];
        let base = Parts {
            script: "cc a.c",
            env: &e,
            inputs: &inputs,
            ..Parts::default()
        };
        let k = Key::of(&base).digest;
        let variants = [
            Parts {
                script: "cc b.c",
                ..base.clone()
            },
            Parts {
                shell: Some("bash"),
                ..base.clone()
            },
            Parts {
                image_id: Some("sha256:aa"),
                ..base.clone()
            },
            Parts {
                workdir: Some("sub"),
                ..base.clone()
            },
            Parts {
                env: &e2,
                ..base.clone()
            },
            Parts {
                outputs: &outputs,
                ..base.clone()
            },
            Parts {
                inputs: &inputs2,
                ..base.clone()
            },
            Parts {
                inputs: &[],
                ..base.clone()
            },
            Parts {
                artifacts: &inputs,
                ..base.clone()
            },
        ];
        for v in &variants {
            assert_ne!(Key::of(v).digest, k, "{v:?}");
        }
        assert_eq!(Key::of(&base).digest, k);
        assert_eq!(k.len(), 64);
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        let a = env(&[("AB", "C")]);
        let b = env(&[("A", "BC")]);
        let ka = Key::of(&Parts {
            env: &a,
            ..Parts::default()
        });
        let kb = Key::of(&Parts {
            env: &b,
            ..Parts::default()
        });
        assert_ne!(ka.digest, kb.digest);
    }

    #[test]
    fn a_secret_takes_part_by_name_only() {
        let names = vec!["TOKEN".to_string()];
        let one = env(&[("TOKEN", "hunter2-secret")]);
        let two = env(&[("TOKEN", "other-value")]);
        let k1 = Key::of(&Parts {
            env: &one,
            secret_names: &names,
            ..Parts::default()
        });
        let k2 = Key::of(&Parts {
            env: &two,
            secret_names: &names,
            ..Parts::default()
        });
        assert_eq!(k1, k2);
        assert!(!k1.readable.contains("hunter2"), "{}", k1.readable);
        assert!(k1.readable.contains("secret \"TOKEN\""), "{}", k1.readable);
    }
}
