// C shim for swift-vmm: kernel headers and fixed-arity wrappers only, no logic.
// Macros built from _IO/_IOW/_IOWR and (1 << n) flags do not import into Swift,
// so they are re-exported here as constants.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <asm/bootparam.h>
#include <sys/random.h>
#include <sys/types.h>
#include <fcntl.h>
#include <unistd.h>
#include <linux/falloc.h>

/// fallocate(2) is declared by <fcntl.h> only under _GNU_SOURCE; the prototype is glibc's.
extern int fallocate(int fd, int mode, off_t offset, off_t len);
static inline int ckvm_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    return fallocate(fd, mode, (off_t)offset, (off_t)length);
}
/// accept4(2) and pthread_setname_np(3) are GNU extensions, declared only under _GNU_SOURCE.
#include <sys/socket.h>
extern int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
extern int pthread_setname_np(pthread_t thread, const char *name);
/// strerrorname_np(3) (glibc 2.32): the errno's symbolic name ("EEXIST"), NULL if unknown.
extern const char *strerrorname_np(int errnum);
static inline int ckvm_accept4(int fd, int flags) { return accept4(fd, 0, 0, flags); }
#include <sys/syscall.h>
/// The calling thread's kernel thread id (what QMP's query-cpus-fast reports).
static inline int ckvm_gettid(void) { return (int)syscall(SYS_gettid); }
/// pidfd_open(2) (Linux 5.3): a descriptor that polls readable when process `pid` exits.
static inline int ckvm_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
/// unshare(2) is declared by <sched.h> only under _GNU_SOURCE; the prototype is glibc's. A
/// direct call links into the static release executable (dlsym would find nothing there).
extern int unshare(int flags);
static inline int ckvm_unshare(int flags) { return unshare(flags); }
#include <linux/sched.h>
/// unshare(2)'s flag for a new network namespace.
static const int CKVM_CLONE_NEWNET = CLONE_NEWNET;
static inline int ckvm_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }
static const int CKVM_FALLOC_FL_KEEP_SIZE = FALLOC_FL_KEEP_SIZE;
static const int CKVM_FALLOC_FL_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;

/// ioctl with no argument: the kernel still wants an explicit third argument (0).
static inline int ckvm_ioctl_none(int fd, unsigned long request) {
    return ioctl(fd, request, 0);
}
/// ioctl with an integer argument.
static inline int ckvm_ioctl_int(int fd, unsigned long request, unsigned long arg) {
    return ioctl(fd, request, arg);
}
/// ioctl with a pointer argument.
static inline int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg) {
    return ioctl(fd, request, arg);
}

// System ioctls
static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long CKVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;

// VM ioctls
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long CKVM_IRQ_LINE_STATUS = KVM_IRQ_LINE_STATUS;
static const unsigned long CKVM_IOEVENTFD = KVM_IOEVENTFD;
static const unsigned long CKVM_IRQFD = KVM_IRQFD;
static const unsigned long CKVM_SET_GSI_ROUTING = KVM_SET_GSI_ROUTING;
static const unsigned long CKVM_SIGNAL_MSI = KVM_SIGNAL_MSI;
static const unsigned long CKVM_ENABLE_CAP = KVM_ENABLE_CAP;
static const unsigned long CKVM_GET_CLOCK = KVM_GET_CLOCK;
static const unsigned long CKVM_GET_DIRTY_LOG = KVM_GET_DIRTY_LOG;
static const unsigned long CKVM_CLEAR_DIRTY_LOG = KVM_CLEAR_DIRTY_LOG;
static const unsigned long CKVM_REGISTER_COALESCED_MMIO = KVM_REGISTER_COALESCED_MMIO;
static const unsigned long CKVM_UNREGISTER_COALESCED_MMIO = KVM_UNREGISTER_COALESCED_MMIO;

// vCPU ioctls
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
static const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_GET_CPUID2 = KVM_GET_CPUID2;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_GET_MP_STATE = KVM_GET_MP_STATE;
static const unsigned long CKVM_SET_MP_STATE = KVM_SET_MP_STATE;
static const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long CKVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
static const unsigned long CKVM_SET_IRQCHIP = KVM_SET_IRQCHIP;
static const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long CKVM_SET_SIGNAL_MASK = KVM_SET_SIGNAL_MASK;

// Flags
static const uint32_t CKVM_IOEVENTFD_FLAG_DATAMATCH = KVM_IOEVENTFD_FLAG_DATAMATCH;
static const uint32_t CKVM_IOEVENTFD_FLAG_PIO = KVM_IOEVENTFD_FLAG_PIO;
static const uint32_t CKVM_IOEVENTFD_FLAG_DEASSIGN = KVM_IOEVENTFD_FLAG_DEASSIGN;
static const uint32_t CKVM_IRQFD_FLAG_DEASSIGN = KVM_IRQFD_FLAG_DEASSIGN;
static const uint32_t CKVM_IRQFD_FLAG_RESAMPLE = KVM_IRQFD_FLAG_RESAMPLE;
static const uint32_t CKVM_MEM_READONLY = KVM_MEM_READONLY;
static const uint32_t CKVM_MEM_LOG_DIRTY_PAGES = KVM_MEM_LOG_DIRTY_PAGES;
static const uint64_t CKVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
static const uint64_t CKVM_DIRTY_LOG_INITIALLY_SET = KVM_DIRTY_LOG_INITIALLY_SET;

// eventfd / epoll flags
static const int CKVM_EFD_NONBLOCK = EFD_NONBLOCK;
static const int CKVM_EFD_CLOEXEC = EFD_CLOEXEC;
static const int CKVM_EFD_SEMAPHORE = EFD_SEMAPHORE;
static const int CKVM_EPOLL_CLOEXEC = EPOLL_CLOEXEC;
static const uint32_t CKVM_EPOLLIN = EPOLLIN;

// epoll_event is packed on x86-64; these keep its layout out of Swift.
int ckvm_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
// Waits for up to `max` events; fills parallel arrays; returns the count or -1.
int ckvm_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms);

// kvm_run field offsets (bytes from the start of the mapping), so the KVM module can read
// the exit payload with bounds-checked raw loads instead of copying the anonymous union.
#include <stddef.h>
static const size_t CKVM_RUN_SIZE = sizeof(struct kvm_run);
static const size_t CKVM_RUN_IMMEDIATE_EXIT = offsetof(struct kvm_run, immediate_exit);
static const size_t CKVM_RUN_EXIT_REASON = offsetof(struct kvm_run, exit_reason);
static const size_t CKVM_RUN_IO_DIRECTION = offsetof(struct kvm_run, io.direction);
static const size_t CKVM_RUN_IO_SIZE = offsetof(struct kvm_run, io.size);
static const size_t CKVM_RUN_IO_PORT = offsetof(struct kvm_run, io.port);
static const size_t CKVM_RUN_IO_COUNT = offsetof(struct kvm_run, io.count);
static const size_t CKVM_RUN_IO_DATA_OFFSET = offsetof(struct kvm_run, io.data_offset);
static const size_t CKVM_RUN_MMIO_PHYS_ADDR = offsetof(struct kvm_run, mmio.phys_addr);
static const size_t CKVM_RUN_MMIO_DATA = offsetof(struct kvm_run, mmio.data);
static const size_t CKVM_RUN_MMIO_LEN = offsetof(struct kvm_run, mmio.len);
static const size_t CKVM_RUN_MMIO_IS_WRITE = offsetof(struct kvm_run, mmio.is_write);
static const size_t CKVM_RUN_FAIL_ENTRY_REASON = offsetof(struct kvm_run, fail_entry.hardware_entry_failure_reason);
static const size_t CKVM_RUN_INTERNAL_SUBERROR = offsetof(struct kvm_run, internal.suberror);
static const size_t CKVM_RUN_SYSTEM_EVENT_TYPE = offsetof(struct kvm_run, system_event.type);
static const size_t CKVM_RUN_HW_EXIT_REASON = offsetof(struct kvm_run, hw.hardware_exit_reason);

// The coalesced MMIO ring (KVM_CAP_COALESCED_MMIO's page of the vCPU mapping): header and
// entry layout, so the KVM module reads it with bounds-checked raw loads.
static const size_t CKVM_COALESCED_RING_FIRST = offsetof(struct kvm_coalesced_mmio_ring, first);
static const size_t CKVM_COALESCED_RING_LAST = offsetof(struct kvm_coalesced_mmio_ring, last);
static const size_t CKVM_COALESCED_RING_ENTRIES = offsetof(struct kvm_coalesced_mmio_ring, coalesced_mmio);
static const size_t CKVM_COALESCED_ENTRY_SIZE = sizeof(struct kvm_coalesced_mmio);
static const size_t CKVM_COALESCED_ENTRY_PHYS_ADDR = offsetof(struct kvm_coalesced_mmio, phys_addr);
static const size_t CKVM_COALESCED_ENTRY_LEN = offsetof(struct kvm_coalesced_mmio, len);
static const size_t CKVM_COALESCED_ENTRY_PIO = offsetof(struct kvm_coalesced_mmio, pio);
static const size_t CKVM_COALESCED_ENTRY_DATA = offsetof(struct kvm_coalesced_mmio, data);

/// Acquire load / release store of a 32-bit word shared with the kernel (the ring's
/// `last`, which the kernel publishes after the entry, and `first`, which hands an entry back).
static inline uint32_t ckvm_load_acquire_u32(const void *p) {
    return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
}
static inline void ckvm_store_release_u32(void *p, uint32_t v) {
    __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE);
}

#endif
