//! Ending the results run: files still open are finished (or recorded as
//! incomplete), no new file can appear, and the manifest is written.

use std::sync::Arc;

use super::{path_of, CloseReport, FileState, Kind, Output, Writer, OUTPUT_INO};
use crate::results::{ManifestBody, ManifestDir, ManifestFile, ManifestOpen};

impl Output {
    /// Ends the run: no new files; if `finish_open`, files whose release
    /// never came (the session has ended, so nothing holds them) are
    /// finished, otherwise they are recorded as incomplete; then the
    /// manifest is written.
    pub fn close(&self, finish_open: bool) -> CloseReport {
        // Files whose release never came, with their path now.
        let pending: Vec<(u64, Writer, Vec<u8>, u32, bool)> = match self.lock() {
            Ok(mut t) => {
                t.closed = true;
                if finish_open {
                    t.nodes
                        .iter()
                        .filter_map(|(&ino, n)| match &n.kind {
                            Kind::File(FileState::Writing { w, .. }) => {
                                Some((ino, Arc::clone(w), path_of(&t, ino), n.mode, n.linked))
                            }
                            _ => None,
                        })
                        .collect()
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        for (ino, w, path, mode, linked) in pending {
            self.finish_one(ino, &w, &path, mode, linked);
        }
        let mut body = ManifestBody::default();
        let mut incomplete = Vec::new();
        if let Ok(t) = self.lock() {
            let mut inos: Vec<_> = t.nodes.keys().copied().collect();
            inos.sort_unstable();
            for ino in inos {
                let n = &t.nodes[&ino];
                if ino == OUTPUT_INO || !n.linked {
                    continue;
                }
                let path = path_of(&t, ino);
                match &n.kind {
                    Kind::Dir { .. } => body.dirs.push(ManifestDir { mode: n.mode, path }),
                    Kind::File(FileState::Done(f)) => body.files.push(ManifestFile {
                        object: f.object.clone(),
                        size: f.size,
                        sha256: f.sha256,
                        mode: n.mode,
                        path,
                    }),
                    Kind::File(FileState::Writing { w, .. }) => {
                        let object = w
                            .lock()
                            .ok()
                            .and_then(|g| g.as_ref().map(|o| o.partial_name()))
                            .unwrap_or_default();
                        incomplete.push(format!("{object}{}", crate::log::Also(&path)));
                        body.open.push(ManifestOpen { object, path });
                    }
                    Kind::File(FileState::Failed { partial }) => {
                        incomplete.push(format!("{partial}{}", crate::log::Also(&path)));
                        body.open.push(ManifestOpen {
                            object: partial.clone(),
                            path,
                        });
                    }
                }
            }
        }
        let manifest = self.run.write_manifest(&body).map_err(|e| e.to_string());
        CloseReport {
            files: body.files.len(),
            incomplete,
            manifest,
        }
    }
}
