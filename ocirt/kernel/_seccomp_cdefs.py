"""C declarations of the libseccomp calls ocirt makes (shared by _seccomp_build.py and the fallback
in ocirt/seccomp.py). ABI mode: libseccomp.so.2 is dlopen()ed, nothing is compiled.

Enums are declared as plain ints in the signatures (they are int-sized in the C ABI); the values
live in ocirt/seccomp.py. Only calls that exist in libseccomp >= 2.5.0 are declared.
"""

CDEF = """
typedef void *scmp_filter_ctx;
typedef uint64_t scmp_datum_t;

struct scmp_version {
    unsigned int major;
    unsigned int minor;
    unsigned int micro;
};

struct scmp_arg_cmp {
    unsigned int arg;
    int op;
    scmp_datum_t datum_a;
    scmp_datum_t datum_b;
};

const struct scmp_version *seccomp_version(void);
unsigned int seccomp_api_get(void);

scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);

uint32_t seccomp_arch_resolve_name(const char *arch_name);
uint32_t seccomp_arch_native(void);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);

int seccomp_attr_get(const scmp_filter_ctx ctx, int attr, uint32_t *value);
int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);

int seccomp_syscall_resolve_name(const char *name);
int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);

int seccomp_load(const scmp_filter_ctx ctx);
int seccomp_notify_fd(const scmp_filter_ctx ctx);
int seccomp_export_pfc(const scmp_filter_ctx ctx, int fd);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);

/* libc, for loading an exported BPF program with seccomp(2) directly */
struct sock_filter {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
};

struct sock_fprog {
    unsigned short len;
    struct sock_filter *filter;
};

long syscall(long number, ...);
"""
