//! A shard's readiness set: one epoll instance per shard thread, so that a
//! waiting socket sits in the kernel's epoll and not in io_uring's poll table.
//!
//! glommio arms one io_uring poll per waiting socket and cancels and re-arms
//! its preemption timer on every reactor turn; the kernel's cancel searches
//! the poll table first, so that search grew with the connections per shard
//! (11 % of the broker's CPU at 15K connections, `GLOMMIO-NOTES.md`), and
//! every read armed a fresh poll. Here a socket is registered once, for
//! reading and writing, edge-triggered: a task that would wait leaves its
//! waker in the socket's entry ([`Registration::wait_read`] /
//! [`Registration::wait_write`]) after the syscall said `EAGAIN`, and one
//! task per shard ([`run`]) waits for the epoll instance itself to become
//! readable — the one poll the shard keeps in io_uring for these sockets —
//! then takes every event and wakes the tasks that wait.
//!
//! Edge-triggered is safe because a waker is only left after a syscall found
//! the socket empty (or full), and nothing else runs on the thread between
//! that syscall and leaving the waker; an event for a socket nobody waits on
//! is dropped, and its task finds the bytes on its next read.
//!
//! Owned per thread (a shard is a thread) and made on first use on an
//! executor, again when another executor runs on the thread (tests). Used by
//! [`super::tcp`]: plain TCP connections and the listeners' sockets.

use crate::slab::{Key, ReadyTag, Slab};
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// Events taken from the kernel per `epoll_wait`.
const BATCH: usize = 256;

/// What a socket is registered for: once, for its whole life.
const INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// Events that end a wait for reading (a peer's close or an error is read as one).
const READABLE: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// Events that end a wait for writing.
const WRITABLE: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

thread_local! {
    /// This thread's set, with the executor it runs on.
    static SET: RefCell<Option<Rc<Set>>> = const { RefCell::new(None) };
    /// How long the set's task gathers events after taking some
    /// (`runtime.wake_window_us`; zero: it waits for the next at once).
    static WINDOW: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Set this thread's gathering window (the shard does, as it starts): while
/// events come closer together than the window, the set's task sleeps this
/// long after taking some instead of arming the kernel to wake it at the
/// next one, so a busy shard wakes about once per window rather than once
/// per event (`crate::gather`); a lone event is taken at once.
pub fn set_window(window: Duration) {
    WINDOW.with(|w| w.set(window));
}

/// One shard's epoll instance and who waits on each of its sockets.
#[derive(Debug)]
struct Set {
    epfd: OwnedFd,
    /// The glommio executor whose task ([`run`]) takes this set's events.
    executor: usize,
    entries: RefCell<Slab<Entry, ReadyTag>>,
}

/// The task waiting on one socket (its owner: one connection task or
/// accept loop waits for reading, writing or both), for which events, and
/// whether the socket may have bytes to read.
#[derive(Debug)]
struct Entry {
    waker: Option<Waker>,
    /// The events (`READABLE`, `WRITABLE` or both) that end the wait.
    wants: u32,
    /// False from a read that found nothing until the next readable event:
    /// a task woken to write does not try a `recv(2)` that would find
    /// nothing again.
    readable: bool,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            waker: None,
            wants: 0,
            readable: true,
        }
    }
}

impl Entry {
    /// Wake `waker` on any of `events` too. Another task's waker, waiting
    /// meanwhile, is woken now rather than forgotten (it looks again).
    fn wait(&mut self, waker: &Waker, events: u32) {
        match &self.waker {
            Some(w) if w.will_wake(waker) => self.wants |= events,
            _ => {
                if let Some(old) = self.waker.replace(waker.clone()) {
                    old.wake();
                }
                self.wants = events;
            }
        }
    }

    /// The waker, if `bits` end its wait.
    fn fired(&mut self, bits: u32) -> Option<Waker> {
        if bits & READABLE != 0 {
            self.readable = true;
        }
        if bits & self.wants == 0 {
            return None;
        }
        self.wants = 0;
        self.waker.take()
    }
}

/// A socket in this shard's readiness set. Its entry goes when dropped; the
/// kernel's registration goes when the socket closes, or at [`Self::leave`]
/// for a socket that moves on open.
#[derive(Debug)]
pub struct Registration {
    set: Rc<Set>,
    key: Key<ReadyTag>,
}

impl Registration {
    /// Register socket `fd` with this shard's set (made, with its task, on
    /// first use). The caller keeps `fd` open while the registration lives.
    pub fn new(fd: RawFd) -> io::Result<Registration> {
        let set = current()?;
        let key = set.entries.borrow_mut().insert(Entry::default());
        let mut ev = libc::epoll_event {
            events: INTEREST,
            u64: key.to_raw(),
        };
        // SAFETY: epoll_ctl on our epoll fd with a valid event struct.
        let rc = unsafe { libc::epoll_ctl(set.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            set.entries.borrow_mut().remove(key);
            return Err(io::Error::last_os_error());
        }
        Ok(Registration { set, key })
    }

    /// Wake `waker` when the socket may have bytes to read (or closed):
    /// called after a read found nothing.
    pub fn wait_read(&self, waker: &Waker) {
        if let Some(e) = self.set.entries.borrow_mut().get_mut(self.key) {
            e.readable = false;
            e.wait(waker, READABLE);
        }
    }

    /// Whether a read may find something: false from [`Self::wait_read`]
    /// until the socket's next readable event.
    pub fn may_read(&self) -> bool {
        self.set
            .entries
            .borrow()
            .get(self.key)
            .is_none_or(|e| e.readable)
    }

    /// Wake `waker` when the socket may take more bytes.
    pub fn wait_write(&self, waker: &Waker) {
        if let Some(e) = self.set.entries.borrow_mut().get_mut(self.key) {
            e.wait(waker, WRITABLE);
        }
    }

    /// Take socket `fd` (the one registered) out of the kernel's
    /// registration now: it is about to move to another shard still open
    /// (closing it would have done this).
    pub fn leave(&self, fd: RawFd) {
        // SAFETY: epoll_ctl DEL of a descriptor the owner still holds open.
        unsafe {
            libc::epoll_ctl(
                self.set.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            );
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.set.entries.borrow_mut().remove(self.key);
    }
}

/// This executor's set, made (and its task spawned) on first use.
fn current() -> io::Result<Rc<Set>> {
    let executor = glommio::executor().id();
    SET.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some(set) = cell.as_ref().filter(|s| s.executor == executor) {
            return Ok(set.clone());
        }
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let set = Rc::new(Set {
            // SAFETY: a fresh descriptor nothing else owns.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            executor,
            entries: RefCell::new(Slab::new()),
        });
        glommio::spawn_local(run(set.clone())).detach();
        *cell = Some(set.clone());
        Ok(set)
    })
}

/// The set's task: take the events there are and wake who waits; then,
/// while busy (`crate::gather`), sleep for the window and look again;
/// otherwise wait until the epoll instance has events. For as long as the
/// executor runs.
async fn run(set: Rc<Set>) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
    let mut woken: Vec<Waker> = Vec::with_capacity(BATCH);
    let mut gather = crate::gather::Gather::default();
    loop {
        if set.drain(&mut events, &mut woken) > 0 {
            let window = WINDOW.with(Cell::get);
            if let Some(wait) = gather.after_batch(Instant::now(), window) {
                glommio::timer::sleep(wait).await;
                continue;
            }
        }
        readable(set.epfd.as_raw_fd()).await;
    }
}

impl Set {
    /// Take every event the instance has (never waiting) and wake who waits
    /// on them; the number taken.
    fn drain(&self, events: &mut [libc::epoll_event], woken: &mut Vec<Waker>) -> usize {
        let mut taken = 0;
        loop {
            let room = events.len();
            // SAFETY: epoll_wait fills at most `room` entries of our buffer; timeout 0.
            let n = unsafe {
                libc::epoll_wait(self.epfd.as_raw_fd(), events.as_mut_ptr(), room as i32, 0)
            };
            let n = usize::try_from(n).unwrap_or(0);
            self.take_wakers(&events[..n], woken);
            woken.drain(..).for_each(Waker::wake);
            taken += n;
            if n < room {
                return taken;
            }
        }
    }

    /// The wakers the events `evs` end, moved into `out`.
    fn take_wakers(&self, evs: &[libc::epoll_event], out: &mut Vec<Waker>) {
        let mut entries = self.entries.borrow_mut();
        for ev in evs {
            let (bits, raw) = (ev.events, ev.u64);
            let Some(e) = entries.get_mut(Key::from_raw(raw)) else {
                continue;
            };
            out.extend(e.fired(bits));
        }
    }
}

/// Wait until epoll instance `epfd` is readable (has events).
///
/// glommio has no public "wait for this descriptor" call, but wrapping a
/// descriptor as its `TcpStream` arms an io_uring poll for reading at once,
/// and the stream's read waits for that poll before it tries `recv(2)` —
/// which fails on an epoll descriptor (`ENOTSOCK`), so the read ends, with
/// that error, exactly when the instance has events. The stream is never
/// dropped: that would close the set's descriptor (and a dup per wait would
/// cost a descriptor, which a broker at its descriptor limit does not have).
/// Left undropped are a weak count of the reactor and two timer ids (plain
/// numbers): the poll itself completed, and the read that saw the error
/// released it. Only a wait cut short (the executor stopping) leaves its
/// armed poll behind.
async fn readable(epfd: RawFd) {
    // SAFETY: the set's open descriptor, which the set closes; the stream
    // is kept from closing it (ManuallyDrop) and only polled, never read.
    let mut bell = ManuallyDrop::new(unsafe { glommio::net::TcpStream::from_raw_fd(epfd) });
    let mut none = [0u8; 0];
    let _ =
        poll_fn(|cx| futures_lite::AsyncRead::poll_read(Pin::new(&mut *bell), cx, &mut none)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn one_waker_serves_a_wait_for_reading_and_writing() {
        let (count, w) = waker();
        let mut e = Entry {
            readable: false,
            ..Default::default()
        };
        e.wait(&w, READABLE);
        e.wait(&w, WRITABLE);
        assert!(e.fired(libc::EPOLLOUT as u32).is_some(), "writable ends it");
        assert!(e.fired(libc::EPOLLIN as u32).is_none(), "woken once");
        assert!(
            e.readable,
            "a readable event is remembered, waited for or not"
        );
        e.wait(&w, WRITABLE);
        assert!(
            e.fired(libc::EPOLLIN as u32).is_none(),
            "not waiting to read"
        );
        assert!(
            e.fired(libc::EPOLLHUP as u32).is_some(),
            "a hang-up ends any wait"
        );
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            0,
            "fired hands the waker back"
        );
    }

    #[test]
    fn another_tasks_waker_wakes_the_one_it_replaces() {
        let (first, a) = waker();
        let (second, b) = waker();
        let mut e = Entry::default();
        e.wait(&a, READABLE);
        e.wait(&b, WRITABLE);
        assert_eq!(first.0.load(Ordering::Relaxed), 1, "not forgotten");
        assert!(
            e.fired(libc::EPOLLIN as u32).is_none(),
            "b waits to write only"
        );
        if let Some(w) = e.fired(libc::EPOLLOUT as u32) {
            w.wake();
        }
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
    }
}
