//! The idle init's memory footprint.
//!
//! The init is the process that built the container, so by the time it
//! waits its page tables map most of the executor's code and constants,
//! none of which its loop needs. Unmapping those pages (they stay in the
//! page cache, shared with every other init and with the next start) leaves
//! the init with the few pages its loop faults back in.

use std::ffi::{c_int, c_void};

/// Drops this process's mappings of the read-only segments of its code and
/// returns free heap pages to the kernel.
pub fn release_setup_pages() {
    // SAFETY: malloc_trim only hands unused heap memory back to the kernel.
    unsafe { libc::malloc_trim(0) };
    // SAFETY: dl_iterate_phdr calls the callback with valid headers of the
    // loaded objects; the callback reads them and calls madvise only.
    unsafe { libc::dl_iterate_phdr(Some(drop_read_only_segments), std::ptr::null_mut()) };
}

/// `dl_iterate_phdr` callback: MADV_DONTNEED on every page that lies wholly
/// inside a read-only `PT_LOAD` segment of a loaded object (the program and,
/// when linked dynamically, the C library and the loader). The kernel's
/// vDSO is not a file mapping and is skipped. Writable segments are left
/// alone: dropping their private pages would lose data.
unsafe extern "C" fn drop_read_only_segments(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    _data: *mut c_void,
) -> c_int {
    // SAFETY: the C library passes a valid, readable info record.
    let info = unsafe { &*info };
    let name = if info.dlpi_name.is_null() {
        c""
    } else {
        // SAFETY: dlpi_name is a NUL-terminated string (empty for the program).
        unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
    };
    if name.to_bytes().starts_with(b"linux-vdso") {
        return 0;
    }
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
    let page = page_size();
    for header in headers {
        if header.p_type != libc::PT_LOAD || header.p_flags & libc::PF_W != 0 {
            continue;
        }
        let start = (info.dlpi_addr + header.p_vaddr).next_multiple_of(page);
        let end = (info.dlpi_addr + header.p_vaddr + header.p_memsz) / page * page;
        if end > start {
            // SAFETY: the range is a read-only file mapping of this
            // program; dropping it only makes the next access fault the
            // same contents back in from the page cache.
            unsafe {
                libc::madvise(
                    start as *mut c_void,
                    (end - start) as usize,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }
    0
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}
