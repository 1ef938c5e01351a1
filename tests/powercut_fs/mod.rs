//! A disk with a volatile write cache, as a FUSE filesystem, for the power-cut test.
//!
//! Everything lives in this process's memory, in two layers per object:
//!
//! - a **file** has what reads see (`data`), what survives a power cut (`durable`), and
//!   the writes and truncations since its last `fsync`/`fdatasync` (`unsynced`, in order,
//!   each with its bytes);
//! - a **directory** has its entries as `readdir` and `lookup` see them (`entries`) and as
//!   they survive a cut (`durable`): a file created, renamed or removed in it is in the
//!   durable entries only once the directory itself is fsynced.
//!
//! [`Disk::cut`] is the power cut: every file goes back to its durable bytes and every
//! directory to its durable entries, and what no durable entry reaches any more is gone
//! (a new file whose directory was never fsynced, however often the file itself was).
//! A cut in [`CutMode::Torn`] first lets each file keep a random prefix of its unsynced
//! operations, the last of them torn at a random byte: the disk wrote some of its cache,
//! in order, before the power went, and stopped in the middle of a write.
//!
//! This is the model of LazyFS (the FUSE filesystem Jepsen uses to lose unsynced writes),
//! written for this test: an in-memory store keeps a cut exact and cheap (no lower
//! filesystem whose own cache would have to be reasoned about), and the test owns the
//! cut, so no control channel is needed. The kernel must not cache what it writes
//! either: the mount uses FUSE's default write-through mode (no `writeback_cache`), so
//! every `write(2)` reaches [`Fs::write`] before it returns, and the cut is done with the
//! filesystem unmounted, so no page or dentry cache outlives it.
//!
//! Not modelled: reordering of writes within a file (a torn cut keeps a prefix, in order),
//! a directory's operations surviving in part (they survive together, at its fsync),
//! extended attributes, links and special files (refused), permissions beyond the mode
//! bits (the test runs as root).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use rand::Rng;

/// How long the kernel may keep an attribute or a name: every change goes through this
/// filesystem, and the cut happens unmounted, so the kernel's copies cannot go stale.
const TTL: Duration = Duration::from_secs(1);

/// One unsynced change to a file's bytes.
#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

impl Op {
    fn apply(&self, to: &mut Vec<u8>) {
        match self {
            Op::Write { offset, data } => {
                let start = *offset as usize;
                let end = start + data.len();
                if to.len() < end {
                    to.resize(end, 0);
                }
                to[start..end].copy_from_slice(data);
            }
            Op::Truncate(size) => to.resize(*size as usize, 0),
        }
    }
}

#[derive(Default)]
struct File {
    /// What reads see.
    data: Vec<u8>,
    /// What a cut leaves.
    durable: Vec<u8>,
    /// Changes since the last fsync, oldest first.
    unsynced: Vec<Op>,
}

#[derive(Default)]
struct Dir {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

enum Kind {
    File(File),
    Dir(Dir),
}

struct Node {
    kind: Kind,
    perm: u16,
    mtime: SystemTime,
}

/// What a cut took away (and, for a torn cut, kept).
#[derive(Debug, Default, Clone)]
pub struct CutReport {
    /// Files that had unsynced writes, with the byte ranges written (offset, length).
    pub unsynced: Vec<(String, Vec<(u64, u64)>)>,
    /// Bytes of unsynced writes thrown away.
    pub bytes_dropped: u64,
    /// Unsynced operations kept by a torn cut (the last one of a file possibly in part).
    pub ops_kept: usize,
    /// Directory entries that changed since their directory's last fsync.
    pub entries_reverted: usize,
    /// Files and directories that no durable entry reaches any more (gone).
    pub nodes_lost: usize,
}

impl CutReport {
    /// One line: what was unsynced where, and what the cut took.
    pub fn summary(&self) -> String {
        let files: Vec<String> = self
            .unsynced
            .iter()
            .map(|(path, ranges)| {
                let bytes: u64 = ranges.iter().map(|(_, l)| l).sum();
                format!("{path} ({} writes, {bytes} B)", ranges.len())
            })
            .collect();
        format!(
            "unsynced: [{}]; {} B dropped, {} operations kept, {} directory entries reverted, {} files or directories gone",
            files.join(", "),
            self.bytes_dropped,
            self.ops_kept,
            self.entries_reverted,
            self.nodes_lost
        )
    }
}

/// How a cut treats what was not fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Everything unsynced is gone (LazyFS's `clear-cache`).
    DropAll,
    /// Each file keeps a random prefix of its unsynced operations, the last one torn.
    Torn,
}

/// When fsyncs stop being answered, to cut the power in the middle of one: the caller
/// has written and is waiting for its data to be durable, and will never hear back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Every fsync is answered.
    Off,
    /// From now on no fsync is answered (until [`PowerCutFs::cut`]).
    Now,
    /// From the first write at the start of a `size`-byte segment of a file named `db`
    /// (sled's log moving into a new segment) on, no fsync is answered.
    AtSegmentStart(u64),
    /// The power is going: every fsync fails at once (EIO) and makes nothing durable, so
    /// a process killed for the cut that reaches an fsync after the held ones were
    /// answered is not held in turn (it would wait in the kernel, unkillable, for an
    /// answer that never comes). Until [`PowerCutFs::cut`].
    PowerOff,
}

/// Counts of what the filesystem was asked to do, for the test's report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub writes: u64,
    pub fsyncs: u64,
    pub fsyncdirs: u64,
    /// fsyncs held unanswered by a [`Stall`].
    pub held: u64,
}

/// The two layers of every file and directory. Shared between the mounted [`Fs`] and the
/// test, which cuts it while nothing is mounted.
pub struct Disk {
    nodes: HashMap<u64, Node>,
    /// Never reused, so a kernel's stale inode number can never name another file.
    next_ino: u64,
    pub counts: Counts,
    stall: Stall,
    /// The uid and gid every file shows.
    owner: (u32, u32),
    /// The fsyncs a stall holds: answered with EIO once the processes that asked are
    /// being killed (a process waiting in a FUSE request already read by the filesystem
    /// cannot die before the answer).
    held: Vec<fuser::ReplyEmpty>,
}

const ROOT: u64 = 1;

impl Default for Disk {
    fn default() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                kind: Kind::Dir(Dir::default()),
                perm: 0o755,
                mtime: SystemTime::now(),
            },
        );
        Disk {
            nodes,
            next_ino: ROOT + 1,
            counts: Counts::default(),
            stall: Stall::Off,
            // SAFETY: geteuid and getegid have no preconditions and cannot fail.
            owner: unsafe { (libc::geteuid(), libc::getegid()) },
            held: Vec::new(),
        }
    }
}

impl Disk {
    /// The power cut (see the module's documentation). Call it only while unmounted.
    pub fn cut(&mut self, rng: &mut impl Rng, mode: CutMode) -> CutReport {
        let mut report = CutReport::default();
        let names = self.paths();
        for (ino, node) in self.nodes.iter_mut() {
            match &mut node.kind {
                Kind::File(f) => {
                    if f.unsynced.is_empty() {
                        continue;
                    }
                    let ranges: Vec<(u64, u64)> = f
                        .unsynced
                        .iter()
                        .filter_map(|op| match op {
                            Op::Write { offset, data } => Some((*offset, data.len() as u64)),
                            Op::Truncate(_) => None,
                        })
                        .collect();
                    let name = names.get(ino).cloned().unwrap_or_else(|| format!("<inode {ino}>"));
                    report.unsynced.push((name, ranges));
                    let keep = match mode {
                        CutMode::DropAll => 0,
                        CutMode::Torn => rng.gen_range(0..=f.unsynced.len()),
                    };
                    let mut image = std::mem::take(&mut f.durable);
                    for (i, op) in f.unsynced.iter().enumerate() {
                        let bytes = match op {
                            Op::Write { data, .. } => data.len() as u64,
                            Op::Truncate(_) => 0,
                        };
                        if i + 1 < keep {
                            op.apply(&mut image);
                        } else if i + 1 == keep {
                            // The write the power cut stopped: a prefix of it reached the disk.
                            match op {
                                Op::Write { offset, data } => {
                                    let n = rng.gen_range(0..=data.len());
                                    Op::Write {
                                        offset: *offset,
                                        data: data[..n].to_vec(),
                                    }
                                    .apply(&mut image);
                                    report.bytes_dropped += (data.len() - n) as u64;
                                }
                                Op::Truncate(_) => op.apply(&mut image),
                            }
                        } else {
                            report.bytes_dropped += bytes;
                        }
                    }
                    report.ops_kept += keep;
                    f.unsynced.clear();
                    f.data = image.clone();
                    f.durable = image;
                }
                Kind::Dir(d) => {
                    let changed = d.entries.iter().filter(|(k, v)| d.durable.get(*k) != Some(v)).count()
                        + d.durable.keys().filter(|k| !d.entries.contains_key(*k)).count();
                    report.entries_reverted += changed;
                    d.entries = d.durable.clone();
                }
            }
        }
        // What no entry reaches is gone.
        let reachable = self.reachable();
        let before = self.nodes.len();
        self.nodes.retain(|ino, _| reachable.contains_key(ino));
        report.nodes_lost = before - self.nodes.len();
        report
    }

    /// Every node reachable from the root through current entries, with a path.
    fn reachable(&self) -> HashMap<u64, String> {
        let mut seen = HashMap::new();
        seen.insert(ROOT, String::new());
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if let Some(Node { kind: Kind::Dir(d), .. }) = self.nodes.get(&ino) {
                let base = seen.get(&ino).cloned().unwrap_or_default();
                for (name, child) in &d.entries {
                    if !seen.contains_key(child) {
                        seen.insert(*child, format!("{base}/{}", name.to_string_lossy()));
                        todo.push(*child);
                    }
                }
            }
        }
        seen
    }

    /// A path of every node that has one now.
    fn paths(&self) -> HashMap<u64, String> {
        self.reachable()
    }

    /// Bytes held in memory (current, durable and unsynced), to keep an eye on the test.
    pub fn bytes_held(&self) -> usize {
        self.nodes
            .values()
            .map(|n| match &n.kind {
                Kind::File(f) => {
                    f.data.len()
                        + f.durable.len()
                        + f.unsynced
                            .iter()
                            .map(|o| match o {
                                Op::Write { data, .. } => data.len(),
                                Op::Truncate(_) => 0,
                            })
                            .sum::<usize>()
                }
                Kind::Dir(_) => 0,
            })
            .sum()
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let (kind, size, nlink) = match &node.kind {
            Kind::File(f) => (FileType::RegularFile, f.data.len() as u64, 1),
            Kind::Dir(_) => (FileType::Directory, 4096, 2),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm: node.perm,
            nlink,
            // Everything belongs to whoever mounted it (root, or the user of fusermount3).
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut Dir, Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.kind) {
            Some(Kind::Dir(d)) => Ok(d),
            Some(Kind::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(n) if matches!(n.kind, Kind::File(_)) => Ok(n),
            Some(_) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        match self.nodes.get(&parent).map(|n| &n.kind) {
            Some(Kind::Dir(d)) => d.entries.get(name).copied().ok_or(Errno::ENOENT),
            Some(Kind::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// A new file or directory named `name` in `parent`.
    fn make(&mut self, parent: u64, name: &OsStr, kind: Kind, perm: u16) -> Result<FileAttr, Errno> {
        if self.dir_mut(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                kind,
                perm,
                mtime: SystemTime::now(),
            },
        );
        self.dir_mut(parent)?.entries.insert(name.to_os_string(), ino);
        self.attr(ino).ok_or(Errno::EIO)
    }

    fn change(&mut self, ino: u64, op: Op) -> Result<(), Errno> {
        let node = self.file_mut(ino)?;
        node.mtime = SystemTime::now();
        if let Kind::File(f) = &mut node.kind {
            op.apply(&mut f.data);
            f.unsynced.push(op);
        }
        Ok(())
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match self.nodes.get(&ino).map(|n| &n.kind) {
            Some(Kind::Dir(d)) if dir && !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            Some(Kind::Dir(_)) if !dir => return Err(Errno::EISDIR),
            Some(Kind::File(_)) if dir => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.entries.remove(name);
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return Err(Errno::EINVAL);
        }
        if let Ok(old) = self.lookup(newparent, newname) {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if let Some(Node { kind: Kind::Dir(d), .. }) = self.nodes.get(&old) {
                if !d.entries.is_empty() {
                    return Err(Errno::ENOTEMPTY);
                }
            }
        }
        self.dir_mut(newparent)?;
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(newparent)?.entries.insert(newname.to_os_string(), ino);
        Ok(())
    }

    fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        self.counts.fsyncs += 1;
        match self.nodes.get_mut(&ino).map(|n| &mut n.kind) {
            Some(Kind::File(f)) => {
                // Replaying the writes costs what was written, not the file's size.
                for op in f.unsynced.drain(..) {
                    op.apply(&mut f.durable);
                }
                Ok(())
            }
            Some(Kind::Dir(d)) => {
                d.durable = d.entries.clone();
                Ok(())
            }
            None => Err(Errno::ENOENT),
        }
    }

    fn fsyncdir(&mut self, ino: u64) -> Result<(), Errno> {
        self.counts.fsyncdirs += 1;
        let d = self.dir_mut(ino)?;
        d.durable = d.entries.clone();
        Ok(())
    }
}

/// The FUSE side: every request locks the [`Disk`].
pub struct Fs {
    disk: Arc<Mutex<Disk>>,
}

fn lock(disk: &Mutex<Disk>) -> MutexGuard<'_, Disk> {
    disk.lock().unwrap_or_else(|p| p.into_inner())
}

impl Fs {
    fn disk(&self) -> MutexGuard<'_, Disk> {
        lock(&self.disk)
    }

    /// Answers an fsync (of a file or a directory) as the stall says: it fails while the
    /// power goes, waits while fsyncs are held, and otherwise makes `sync` durable.
    fn sync(&self, reply: ReplyEmpty, sync: impl FnOnce(&mut Disk) -> Result<(), Errno>) {
        let mut disk = self.disk();
        match disk.stall {
            Stall::PowerOff => reply.error(Errno::EIO),
            Stall::Now => {
                disk.counts.held += 1;
                disk.held.push(reply);
            }
            Stall::Off | Stall::AtSegmentStart(_) => match sync(&mut disk) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            },
        }
    }
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let disk = self.disk();
        match disk
            .lookup(parent.0, name)
            .and_then(|ino| disk.attr(ino).ok_or(Errno::ENOENT))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.disk().attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut disk = self.disk();
        if let Some(size) = size {
            if let Err(e) = disk.change(ino.0, Op::Truncate(size)) {
                return reply.error(e);
            }
        }
        if let Some(mode) = mode {
            if let Some(n) = disk.nodes.get_mut(&ino.0) {
                n.perm = (mode & 0o7777) as u16;
            }
        }
        match disk.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let perm = (mode & !umask & 0o7777) as u16;
        match self.disk().make(parent.0, name, Kind::Dir(Dir::default()), perm) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.disk().remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.disk().remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.disk().rename(parent.0, name, newparent.0, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.disk().attr(ino.0) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let disk = self.disk();
        match disk.nodes.get(&ino.0).map(|n| &n.kind) {
            Some(Kind::File(f)) => {
                let start = (offset as usize).min(f.data.len());
                let end = (start + size as usize).min(f.data.len());
                reply.data(&f.data[start..end]);
            }
            Some(Kind::Dir(_)) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut disk = self.disk();
        disk.counts.writes += 1;
        if let Stall::AtSegmentStart(size) = disk.stall {
            if offset > 0 && offset % size == 0 && disk.paths().get(&ino.0).is_some_and(|p| p.ends_with("/db")) {
                disk.stall = Stall::Now;
            }
        }
        match disk.change(
            ino.0,
            Op::Write {
                offset,
                data: data.to_vec(),
            },
        ) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // fdatasync keeps the size a read needs, so here it is fsync: a file's only
        // metadata in this model is its size.
        self.sync(reply, |disk| disk.fsync(ino.0));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.disk().nodes.get(&ino.0).map(|n| &n.kind) {
            Some(Kind::Dir(_)) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Some(Kind::File(_)) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let disk = self.disk();
        let Some(Kind::Dir(d)) = disk.nodes.get(&ino.0).map(|n| &n.kind) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for (name, child) in &d.entries {
            let kind = match disk.nodes.get(child).map(|n| &n.kind) {
                Some(Kind::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.sync(reply, |disk| disk.fsyncdir(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Room enough: 16 GiB in 4 KiB blocks, a million inodes.
        reply.statfs(1 << 22, 1 << 22, 1 << 22, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        match self.disk().make(parent.0, name, Kind::File(File::default()), perm) {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mut disk = self.disk();
        let size = disk.attr(ino.0).map(|a| a.size).unwrap_or(0);
        let result = if offset + length > size {
            disk.change(ino.0, Op::Truncate(offset + length))
        } else {
            Ok(())
        };
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

/// The disk, mounted or not.
pub struct PowerCutFs {
    pub disk: Arc<Mutex<Disk>>,
    mountpoint: std::path::PathBuf,
    session: Option<fuser::BackgroundSession>,
}

/// Why the filesystem cannot run here (no /dev/fuse, no permission to mount).
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse does not exist (no FUSE in this kernel or container)".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let fusermount = [
        "/usr/bin/fusermount3",
        "/bin/fusermount3",
        "/usr/bin/fusermount",
        "/bin/fusermount",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if !root && !fusermount {
        return Some("not root, and no fusermount3 to mount as a user (apt-get install fuse3)".into());
    }
    None
}

impl PowerCutFs {
    /// An empty disk mounted at `mountpoint` (an existing empty directory).
    pub fn mount(mountpoint: &Path) -> std::io::Result<PowerCutFs> {
        let mut fs = PowerCutFs {
            disk: Arc::new(Mutex::new(Disk::default())),
            mountpoint: mountpoint.to_path_buf(),
            session: None,
        };
        fs.remount()?;
        Ok(fs)
    }

    fn remount(&mut self) -> std::io::Result<()> {
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("switchboard-powercut".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        let fs = Fs {
            disk: self.disk.clone(),
        };
        let session = fuser::Session::new(fs, &self.mountpoint, &config)?.spawn()?;
        self.session = Some(session);
        Ok(())
    }

    /// Unmounts (every process using the filesystem must be gone), and waits until the
    /// filesystem has answered its last request.
    pub fn unmount(&mut self) -> std::io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }

    /// Stops (or starts again) answering fsyncs; see [`Stall`].
    pub fn stall(&self, stall: Stall) {
        lock(&self.disk).stall = stall;
    }

    /// How many fsyncs the stall holds now.
    pub fn held(&self) -> usize {
        lock(&self.disk).held.len()
    }

    /// Answers every held fsync with EIO. Call it once the processes that wait in them
    /// have been sent SIGKILL: they die on the answer, before they can see it.
    pub fn release_held(&self) {
        let held = std::mem::take(&mut lock(&self.disk).held);
        for reply in held {
            reply.error(Errno::EIO);
        }
    }

    /// The power goes: no fsync is answered with success from now on (see
    /// [`Stall::PowerOff`]) and every held one fails. Call it once the processes using the
    /// filesystem have been sent SIGKILL, before waiting for them.
    pub fn power_off(&self) {
        lock(&self.disk).stall = Stall::PowerOff;
        self.release_held();
    }

    /// The power cut: unmount, throw the volatile layer away, mount what survived.
    /// Every process using the filesystem must be gone.
    pub fn cut(&mut self, rng: &mut impl Rng, mode: CutMode) -> std::io::Result<CutReport> {
        self.release_held();
        self.unmount()?;
        let report = {
            let mut disk = lock(&self.disk);
            disk.stall = Stall::Off;
            disk.cut(rng, mode)
        };
        self.remount()?;
        Ok(report)
    }

    pub fn counts(&self) -> Counts {
        lock(&self.disk).counts
    }

    pub fn bytes_held(&self) -> usize {
        lock(&self.disk).bytes_held()
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        self.release_held();
        let _ = self.unmount();
    }
}
