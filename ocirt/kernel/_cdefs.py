"""C declarations of the libc calls ocirt makes (shared by the build script and the fallback)."""

CDEF = """
int unshare(int flags);
int setns(int fd, int nstype);
int mount(const char *source, const char *target, const char *fstype,
          unsigned long flags, const void *data);
int umount2(const char *target, int flags);
int sethostname(const char *name, size_t len);
int setdomainname(const char *name, size_t len);
int prctl(int option, unsigned long arg2, unsigned long arg3,
          unsigned long arg4, unsigned long arg5);
long syscall(long number, ...);

struct open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

struct mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

struct cap_header {
    uint32_t version;
    int pid;
};

struct cap_data {
    uint32_t effective;
    uint32_t permitted;
    uint32_t inheritable;
};
"""
