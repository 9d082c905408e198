//! A worker inside a container, with the host's Docker socket mounted:
//! every path it hands the engine (the workspace, an attempt's directory)
//! must be a *host* path, or the engine mounts an empty directory of that
//! name from the host instead. The mapping of the worker's own paths to the
//! host's comes from `--host-path LOCAL=HOST`, or, in a container, from the
//! engine: the worker inspects its own container's bind mounts. A needed
//! directory that no mount reaches makes the worker refuse to start.

use std::path::{Path, PathBuf};

/// Worker path prefix -> host path prefix, longest prefix first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathMap {
    pairs: Vec<(PathBuf, PathBuf)>,
}

impl PathMap {
    pub fn new(mut pairs: Vec<(PathBuf, PathBuf)>) -> PathMap {
        pairs.sort_by_key(|(local, _)| std::cmp::Reverse(local.components().count()));
        PathMap { pairs }
    }

    /// `LOCAL=HOST`, both absolute.
    pub fn parse_pair(spec: &str) -> Result<(PathBuf, PathBuf), String> {
        let Some((local, host)) = spec.split_once('=') else {
            return Err(format!(
                "--host-path {spec}: write LOCAL=HOST, e.g. /work=/srv/topsail/work"
            ));
        };
        let (local, host) = (PathBuf::from(local), PathBuf::from(host));
        if !local.is_absolute() || !host.is_absolute() {
            return Err(format!("--host-path {spec}: both paths must be absolute"));
        }
        Ok((local, host))
    }

    /// The host path of `p`, if a mapped directory holds it.
    pub fn to_host(&self, p: &Path) -> Option<PathBuf> {
        self.pairs.iter().find_map(|(local, host)| {
            p.strip_prefix(local).ok().map(|rest| {
                if rest.as_os_str().is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                }
            })
        })
    }

    /// Refuse directories the engine could not mount: the message names
    /// each and says what to do.
    pub fn check_reachable(&self, needed: &[(&str, &Path)]) -> Result<(), String> {
        let missing: Vec<String> = needed
            .iter()
            .filter(|(_, p)| self.to_host(p).is_none())
            .map(|(what, p)| format!("{what} {}", p.display()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mounted = if self.pairs.is_empty() {
            "no host directory is mounted".to_string()
        } else {
            format!(
                "mounted: {}",
                self.pairs
                    .iter()
                    .map(|(l, h)| format!("{} (host {})", l.display(), h.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(format!(
            "this worker runs in a container and hands paths to the host's Docker engine, but {} \
             {} not on a directory mounted from the host ({mounted}): mount one \
             (`-v /srv/topsail:/work`) and put TMPDIR and --dir inside it, or say where it is \
             on the host with --host-path LOCAL=HOST",
            missing.join(" and "),
            if missing.len() == 1 { "is" } else { "are" }
        ))
    }
}

/// Whether this process runs in a container (Docker's marker file, or a
/// container runtime's cgroup).
pub fn in_container() -> bool {
    Path::new("/.dockerenv").exists()
        || std::fs::read_to_string("/proc/1/cgroup").is_ok_and(|c| {
            c.contains("docker") || c.contains("containerd") || c.contains("kubepods")
        })
}

/// The bind mounts of the container this worker runs in, asked of the
/// engine by the container's id (its hostname, unless the operator set
/// one: then pass --host-path).
pub async fn discover() -> Result<Option<PathMap>, String> {
    let docker = bollard::Docker::connect_with_defaults().map_err(|e| {
        format!("cannot reach the Docker engine to find this container's mounts: {e}")
    })?;
    // Without the engine's own files in our mounts, this may be a container
    // of another engine (or a VM that only looks like one): ask by hostname,
    // and take "no such container" as "not one of this engine's".
    let (id, sure) = match own_container_id() {
        Some(id) => (id, true),
        None => (
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            false,
        ),
    };
    if id.is_empty() {
        return Ok(None);
    }
    let info = match docker
        .inspect_container(
            &id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
    {
        Ok(info) => info,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) if !sure => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot inspect this worker's own container `{id}`: {e}; pass --host-path LOCAL=HOST"
            ));
        }
    };
    let pairs = info
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ.as_deref() == Some("bind"))
        .filter_map(|m| Some((PathBuf::from(m.destination?), PathBuf::from(m.source?))))
        // The socket itself is no directory to hand out.
        .filter(|(local, _)| !local.ends_with("docker.sock"))
        .collect();
    Ok(Some(PathMap::new(pairs)))
}

/// This container's id, from the engine's own files mounted into it
/// (`/var/lib/docker/containers/ID/hostname` in /proc/self/mountinfo): it
/// holds also with `--network host`, where the hostname is the host's.
fn own_container_id() -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    container_id_in(&info)
}

fn container_id_in(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let at = line.find("/containers/")? + "/containers/".len();
        let id: String = line[at..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (id.len() == 64).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_container_id_is_read_from_mountinfo() {
        let id = "a".repeat(64);
        let line = format!(
            "812 790 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw"
        );
        assert_eq!(
            super::container_id_in(&format!("1 2 3 / / rw\n{line}\n")),
            Some(id)
        );
        assert_eq!(super::container_id_in("1 2 3 / / rw\n"), None);
    }

    use super::*;

    #[test]
    fn longest_prefix_maps_and_unreachable_dirs_are_named() {
        let m = PathMap::new(vec![
            ("/work".into(), "/srv/w".into()),
            ("/work/tmp".into(), "/scratch".into()),
        ]);
        assert_eq!(m.to_host(Path::new("/work/a/b")), Some("/srv/w/a/b".into()));
        assert_eq!(
            m.to_host(Path::new("/work/tmp/x")),
            Some("/scratch/x".into())
        );
        assert_eq!(m.to_host(Path::new("/work")), Some("/srv/w".into()));
        assert_eq!(m.to_host(Path::new("/workspace")), None);
        assert_eq!(m.to_host(Path::new("/tmp")), None);
        let e = m
            .check_reachable(&[
                ("TMPDIR", Path::new("/tmp")),
                ("--dir", Path::new("/work/x")),
            ])
            .unwrap_err();
        assert!(
            e.contains("TMPDIR /tmp is not on a directory mounted"),
            "{e}"
        );
        assert!(!e.contains("--dir /work/x"), "{e}");
        assert!(PathMap::parse_pair("rel=/x").is_err());
        assert_eq!(
            PathMap::parse_pair("/a=/b").unwrap(),
            (PathBuf::from("/a"), PathBuf::from("/b"))
        );
    }
}
