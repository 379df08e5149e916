//! The write-ahead log: segment files of checksummed records, appended by one thread that
//! group-commits (one `fsync` for every record that queued up while the last one ran).
//!
//! ```text
//!  write() ─┐ seq = next++ (under a lock, so file order == sequence order)
//!  write() ─┼─► channel ─► WAL thread: append all queued ─► fsync ─► wake every waiter
//!  write() ─┘
//!  segment file: [len u32][crc32 u32][WalOp protobuf] …
//! ```
//!
//! Invariants:
//! - a record is acknowledged only after the fsync that covers it returned;
//! - records appear in the files in sequence-number order;
//! - a segment is deleted only when every record in it is persisted (its highest sequence
//!   number is below the buffer's persisted watermark);
//! - on replay a torn or corrupt tail (a crash mid-append, never acknowledged) is cut off.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::BufMut;
use ferrite_proto::ferrite::ingester::v1::WalOp;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

const HEADER_LEN: usize = 8;
/// Upper bound for one record, so a corrupt length cannot make replay allocate gigabytes.
const MAX_RECORD_LEN: usize = 1 << 30;
/// How many queued bytes one group commit takes at most before it syncs.
const MAX_GROUP_BYTES: usize = 64 << 20;

/// WAL errors.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// File system failure.
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The WAL thread has stopped.
    #[error("WAL is closed")]
    Closed,
    /// A group commit failed; the message is shared by every write in the group.
    #[error("WAL append failed: {0}")]
    Append(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A record read back at replay.
#[derive(Debug)]
pub struct ReplayedOp {
    /// The decoded record.
    pub op: WalOp,
}

enum Command {
    Append {
        record: Vec<u8>,
        seq: u64,
        done: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Delete every segment whose records all have sequence numbers below the watermark.
    Truncate { watermark: u64 },
}

struct Sequencer {
    next: u64,
    /// Appended writes whose rows are not in the buffer yet. They hold the watermark back so
    /// their segment is not deleted while the rows exist only in the WAL.
    pending: BTreeSet<u64>,
    tx: Option<mpsc::Sender<Command>>,
}

/// Handle to the WAL. Cheap to share behind an `Arc`.
pub struct Wal {
    sequencer: Mutex<Sequencer>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dir: PathBuf,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish()
    }
}

/// A pending durable append.
pub type SyncWaiter = oneshot::Receiver<Result<(), String>>;

impl Wal {
    /// Open the WAL in `dir`: read every existing record (returned in sequence order, torn
    /// tails cut off), then start a fresh segment for new writes.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(Self, Vec<ReplayedOp>), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut segments = list_segments(dir)?;
        let mut ops = Vec::new();
        let mut closed = Vec::new();
        for (id, path) in &segments {
            let max_seq = replay_segment(path, &mut ops)?;
            closed.push(Segment {
                id: *id,
                path: path.clone(),
                max_seq,
            });
        }
        ops.sort_by_key(|o| o.op.sequence_number);
        let next_seq = ops.last().map_or(1, |o| o.op.sequence_number + 1);
        let next_id = segments.pop().map_or(1, |(id, _)| id + 1);
        info!(dir = %dir.display(), records = ops.len(), segments = closed.len(), "WAL replayed");

        let (tx, rx) = mpsc::channel();
        let mut writer = Writer::new(dir.to_path_buf(), next_id, segment_bytes, closed)?;
        let thread = std::thread::Builder::new()
            .name("ferrite-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        Ok((
            Self {
                sequencer: Mutex::new(Sequencer {
                    next: next_seq,
                    pending: BTreeSet::new(),
                    tx: Some(tx),
                }),
                thread: Mutex::new(Some(thread)),
                dir: dir.to_path_buf(),
            },
            ops,
        ))
    }

    /// Append a write (`WriteRequest` protobuf bytes) and give it the next sequence number.
    /// With `sync` the returned waiter resolves once the record is fsynced. The sequence
    /// number stays pending until [`Self::buffered`] is called for it.
    pub fn append(&self, write: &[u8], sync: bool) -> Result<(u64, Option<SyncWaiter>), WalError> {
        let mut seqr = self.sequencer.lock();
        // Sequence numbers follow the wall clock (µs) where it is ahead, so that after a
        // partition moves to another ingester its later writes still sort after the earlier
        // ones in that partition's files (dedup keeps the highest).
        let seq = seqr.next.max(now_micros());
        let record = encode_record(seq, write);
        let (done, waiter) = if sync {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        seqr.tx
            .as_ref()
            .ok_or(WalError::Closed)?
            .send(Command::Append { record, seq, done })
            .map_err(|_| WalError::Closed)?;
        seqr.next = seq + 1;
        seqr.pending.insert(seq);
        Ok((seq, waiter))
    }

    /// The write `seq` is in the buffer now (or was refused): it no longer holds the
    /// watermark back.
    pub fn buffered(&self, seq: u64) {
        self.sequencer.lock().pending.remove(&seq);
    }

    /// The persisted watermark: every sequence number below it is persisted. `buffer_min`
    /// must be read from the buffer *after* this WAL's pending set, which this function does
    /// by taking a closure.
    pub fn watermark(&self, buffer_min: impl FnOnce() -> Option<u64>) -> u64 {
        let (pending, next) = {
            let s = self.sequencer.lock();
            (s.pending.first().copied(), s.next)
        };
        // A seq not pending now was either assigned later (>= next) or is already in the
        // buffer, which we read next.
        let buffered = buffer_min();
        pending.unwrap_or(next).min(buffered.unwrap_or(next))
    }

    /// The sequence number the next append will get.
    pub fn next_sequence(&self) -> u64 {
        self.sequencer.lock().next
    }

    /// Drop segments whose records are all below `watermark` (all persisted).
    pub fn truncate(&self, watermark: u64) {
        if let Some(tx) = self.sequencer.lock().tx.as_ref() {
            // A closed WAL keeps its files; that is the safe outcome.
            let _ = tx.send(Command::Truncate { watermark });
        }
    }

    /// Finish queued appends and stop the WAL thread.
    pub fn close(&self) {
        self.sequencer.lock().tx = None;
        if let Some(t) = self.thread.lock().take()
            && t.join().is_err()
        {
            error!("WAL thread panicked");
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `[len][crc][WalOp{sequence_number, write}]`, with the WalOp framed by hand so the (large)
/// write bytes are copied once and not re-encoded.
fn encode_record(seq: u64, write: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(write.len() + 24);
    prost::encoding::uint64::encode(1, &seq, &mut payload);
    prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut payload);
    prost::encoding::encode_varint(write.len() as u64, &mut payload);
    payload.put_slice(write);
    let mut record = Vec::with_capacity(payload.len() + HEADER_LEN);
    record.put_u32_le(payload.len() as u32);
    record.put_u32_le(crc32fast::hash(&payload));
    record.extend_from_slice(&payload);
    record
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((id, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Read one segment's records into `ops`; returns the highest sequence number in it (0 when
/// empty). A bad record ends the segment: the file is cut there.
fn replay_segment(path: &Path, ops: &mut Vec<ReplayedOp>) -> Result<u64, WalError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err(path))?;
    let mut pos = 0;
    let mut max_seq = 0;
    while pos < data.len() {
        match read_record(&data[pos..]) {
            Ok((op, len)) => {
                max_seq = max_seq.max(op.sequence_number);
                ops.push(ReplayedOp { op });
                pos += len;
            }
            Err(reason) => {
                warn!(
                    path = %path.display(),
                    offset = pos,
                    reason,
                    "WAL segment ends in an incomplete or corrupt record; cutting it off"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(path))?;
                file.set_len(pos as u64).map_err(io_err(path))?;
                file.sync_all().map_err(io_err(path))?;
                break;
            }
        }
    }
    Ok(max_seq)
}

fn read_record(data: &[u8]) -> Result<(WalOp, usize), &'static str> {
    if data.len() < HEADER_LEN {
        return Err("truncated header");
    }
    let len = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD_LEN || data.len() < HEADER_LEN + len {
        return Err("truncated record");
    }
    let payload = &data[HEADER_LEN..HEADER_LEN + len];
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch");
    }
    let op = WalOp::decode(payload).map_err(|_| "undecodable record")?;
    Ok((op, HEADER_LEN + len))
}

struct Segment {
    id: u64,
    path: PathBuf,
    max_seq: u64,
}

struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    closed: Vec<Segment>,
    current: Segment,
    file: BufWriter<File>,
    written: u64,
}

impl Writer {
    fn new(
        dir: PathBuf,
        id: u64,
        segment_bytes: u64,
        closed: Vec<Segment>,
    ) -> Result<Self, WalError> {
        let (current, file) = open_segment(&dir, id)?;
        Ok(Self {
            dir,
            segment_bytes,
            closed,
            current,
            file,
            written: 0,
        })
    }

    fn run(&mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            let mut bytes = 0;
            while bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(cmd) => {
                        if let Command::Append { record, .. } = &cmd {
                            bytes += record.len();
                        }
                        group.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
        if let Err(e) = self
            .file
            .flush()
            .and_then(|_| self.file.get_ref().sync_data())
        {
            error!(error = %e, "final WAL sync failed");
        }
    }

    fn commit(&mut self, group: Vec<Command>) {
        let mut waiters = Vec::new();
        let mut watermark = None;
        let mut result = Ok(());
        for cmd in group {
            match cmd {
                Command::Append { record, seq, done } => {
                    if result.is_ok() {
                        result = self.file.write_all(&record);
                        self.written += record.len() as u64;
                        metrics::counter!("ferrite_wal_appends_total").increment(1);
                        metrics::counter!("ferrite_wal_bytes_total").increment(record.len() as u64);
                        self.current.max_seq = self.current.max_seq.max(seq);
                    }
                    waiters.extend(done);
                }
                Command::Truncate { watermark: w } => watermark = Some(w),
            }
        }
        // Sync even when nobody waits: no_sync writes become durable within one group.
        let started = std::time::Instant::now();
        let result = result
            .and_then(|_| self.file.flush())
            .and_then(|_| self.file.get_ref().sync_data())
            .map_err(|e| format!("{}: {e}", self.current.path.display()));
        metrics::histogram!("ferrite_wal_fsync_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            error!(error = %e, "WAL group commit failed");
        }
        for w in waiters {
            let _ = w.send(result.clone());
        }
        if result.is_err() || self.written >= self.segment_bytes {
            self.rotate();
        }
        if let Some(w) = watermark {
            self.truncate(w);
        }
        self.publish();
    }

    /// The segment gauge: closed segments plus the open one.
    fn publish(&self) {
        metrics::gauge!("ferrite_wal_segments").set((self.closed.len() + 1) as f64);
    }

    fn rotate(&mut self) {
        match open_segment(&self.dir, self.current.id + 1) {
            Ok((segment, file)) => {
                let old = std::mem::replace(&mut self.current, segment);
                self.file = file;
                self.written = 0;
                self.closed.push(old);
            }
            Err(e) => error!(error = %e, "cannot open a new WAL segment"),
        }
    }

    fn truncate(&mut self, watermark: u64) {
        // The open segment is rotated out first when everything in it is persisted, so an
        // idle ingester ends up with no replayable data.
        if self.written > 0 && self.current.max_seq < watermark {
            self.rotate();
        }
        self.closed.retain(|s| {
            if s.max_seq < watermark {
                if let Err(e) = fs::remove_file(&s.path) {
                    error!(path = %s.path.display(), error = %e, "cannot delete persisted WAL segment");
                    return true;
                }
                false
            } else {
                true
            }
        });
    }
}

fn open_segment(dir: &Path, id: u64) -> Result<(Segment, BufWriter<File>), WalError> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // Make the new file's directory entry durable too.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok((
        Segment {
            id,
            path,
            max_seq: 0,
        },
        BufWriter::with_capacity(1 << 20, file),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: u8) -> Vec<u8> {
        use ferrite_proto::ferrite::ingester::v1::WriteRequest;
        WriteRequest {
            database_id: n as i64,
            tables: vec![],
            no_sync: false,
        }
        .encode_to_vec()
    }

    #[tokio::test]
    async fn acknowledged_records_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, ops) = Wal::open(dir.path(), 1 << 20).unwrap();
            assert!(ops.is_empty());
            let mut last = 0;
            for n in 1..=5 {
                let (seq, waiter) = wal.append(&payload(n), true).unwrap();
                assert!(seq > last, "sequence numbers increase");
                last = seq;
                waiter.unwrap().await.unwrap().unwrap();
            }
        }
        let (wal, ops) = Wal::open(dir.path(), 1 << 20).unwrap();
        let seqs: Vec<_> = ops.iter().map(|o| o.op.sequence_number).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        let dbs: Vec<_> = ops
            .iter()
            .map(|o| o.op.write.as_ref().unwrap().database_id)
            .collect();
        assert_eq!(dbs, vec![1, 2, 3, 4, 5]);
        assert_eq!(wal.next_sequence(), seqs[4] + 1);
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
            for n in 1..=3 {
                wal.append(&payload(n), true)
                    .unwrap()
                    .1
                    .unwrap()
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
        let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
        let len = fs::metadata(&path).unwrap().len();
        // Simulate a crash halfway through the last record.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (_, ops) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(ops.len(), 2);
        // Garbage after the good records is cut off too.
        let (_, path) = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xff; 40]).unwrap();
        drop(f);
        let (_, ops) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(ops.len(), 2);
    }

    #[tokio::test]
    async fn truncate_deletes_only_persisted_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 1).unwrap(); // rotate after every group
        let mut seqs = Vec::new();
        for n in 1..=4 {
            let (seq, w) = wal.append(&payload(n), true).unwrap();
            w.unwrap().await.unwrap().unwrap();
            seqs.push(seq);
        }
        wal.truncate(seqs[2]); // the first two records are persisted
        let (seq, w) = wal.append(&payload(5), true).unwrap();
        w.unwrap().await.unwrap().unwrap();
        seqs.push(seq);
        drop(wal);
        let (_, ops) = Wal::open(dir.path(), 1).unwrap();
        let replayed: Vec<_> = ops.iter().map(|o| o.op.sequence_number).collect();
        assert_eq!(replayed, seqs[2..].to_vec());
    }
}
