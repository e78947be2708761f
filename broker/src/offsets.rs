//! Committed group offsets, kept in one small JSON file rewritten atomically on every
//! commit (temporary file, fsync, rename, directory fsync).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::storage::Floors;
use crate::{Error, Result};

/// group → topic → partition → next offset to read.
type Table = BTreeMap<String, BTreeMap<String, BTreeMap<i32, i64>>>;

/// The committed offsets of every group.
pub(crate) struct Offsets {
    path: PathBuf,
    table: Table,
}

impl Offsets {
    /// Loads `path` (absent: no commits yet).
    pub(crate) fn load(path: &Path) -> Result<Offsets> {
        let table = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::Offsets {
                path: path.to_path_buf(),
                source,
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Table::new(),
            Err(error) => return Err(Error::io(path)(error)),
        };
        Ok(Offsets {
            path: path.to_path_buf(),
            table,
        })
    }

    /// The offset `group` committed for the partition.
    pub(crate) fn get(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.table.get(group)?.get(topic)?.get(&partition).copied()
    }

    /// Every partition `group` committed, by topic.
    pub(crate) fn of_group(&self, group: &str) -> Vec<(String, Vec<(i32, i64)>)> {
        self.table.get(group).map_or_else(Vec::new, |topics| {
            topics
                .iter()
                .map(|(topic, partitions)| {
                    let partitions = partitions.iter().map(|(p, o)| (*p, *o)).collect();
                    (topic.clone(), partitions)
                })
                .collect()
        })
    }

    /// Records `commits` for `group` and makes them durable before returning.
    pub(crate) fn commit(&mut self, group: &str, commits: &[(String, i32, i64)]) -> Result<()> {
        let topics = self.table.entry(group.to_owned()).or_default();
        for (topic, partition, offset) in commits {
            topics
                .entry(topic.clone())
                .or_default()
                .insert(*partition, *offset);
        }
        self.save()
    }

    fn save(&self) -> Result<()> {
        let temporary = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.table).expect("offsets serialize");
        let mut file = File::create(&temporary).map_err(Error::io(&temporary))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(Error::io(&temporary))?;
        std::fs::rename(&temporary, &self.path).map_err(Error::io(&self.path))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(Error::io(dir))
    }

    /// Per partition, the lowest offset any group committed there: below it, every group
    /// that reads the partition has read (and, for authtrail, stored) everything.
    pub(crate) fn floors(&self) -> Floors {
        let mut floors = Floors::new();
        for topics in self.table.values() {
            for (topic, partitions) in topics {
                for (partition, offset) in partitions {
                    floors
                        .entry((topic.clone(), *partition))
                        .and_modify(|floor| *floor = (*floor).min(*offset))
                        .or_insert(*offset);
                }
            }
        }
        floors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reloading_and_the_floor_is_the_slowest_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.json");
        let mut offsets = Offsets::load(&path).unwrap();
        offsets.commit("a", &[("t".into(), 0, 50)]).unwrap();
        offsets
            .commit("b", &[("t".into(), 0, 30), ("t".into(), 1, 7)])
            .unwrap();
        let offsets = Offsets::load(&path).unwrap();
        assert_eq!(offsets.get("a", "t", 0), Some(50));
        let floors = offsets.floors();
        assert_eq!(floors[&("t".to_owned(), 0)], 30);
        assert_eq!(floors[&("t".to_owned(), 1)], 7);
        assert!(!dir.path().join("groups.json.tmp").exists());
    }
}
