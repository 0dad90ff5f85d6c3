/*
 * seccomp.c - compile a seccomp profile into a BPF program with libseccomp.
 *
 * Runs in the Python caller (not in a forked child): Python decides every
 * value (actions with their errno, architectures, which conditions are AND-ed
 * in one rule), this file only feeds them to libseccomp and exports the BPF
 * into a file descriptor.  Python caches the bytes; the init loads them with
 * seccomp(2) itself (seccomp_load.c), so libseccomp never runs in a container.
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>

#include "pyrt.h"

void pyrt_seccomp_version(uint32_t out[4])
{
    const struct scmp_version *v = seccomp_version();

    out[0] = v ? v->major : 0;
    out[1] = v ? v->minor : 0;
    out[2] = v ? v->micro : 0;
    out[3] = seccomp_api_get();
}

static int add_rule(scmp_filter_ctx ctx, const struct pyrt_seccomp_rule *r, int nr)
{
    struct scmp_arg_cmp cmp[6];
    size_t i;

    if (r->n_args > 6)
        return -E2BIG;
    for (i = 0; i < r->n_args; i++) {
        cmp[i].arg = r->args[i].index;
        cmp[i].op = (enum scmp_compare)r->args[i].op;
        cmp[i].datum_a = r->args[i].value;
        cmp[i].datum_b = r->args[i].value_two;
    }
    return seccomp_rule_add_array(ctx, r->action, nr, (unsigned int)r->n_args, cmp);
}

int pyrt_seccomp_compile(const struct pyrt_seccomp_profile *p, int out_fd,
                         struct pyrt_seccomp_result *res)
{
    scmp_filter_ctx ctx;
    uint32_t arch;
    size_t i;
    int rc = 0, nr;

    memset(res, 0, sizeof *res);
    res->rule = -1;
    ctx = seccomp_init(p->default_action);
    if (!ctx) {
        snprintf(res->what, sizeof res->what, "seccomp_init: invalid default action %#x",
                 p->default_action);
        return -EINVAL;
    }
    /* The BPF goes to a file, never to the kernel from here: these only shape it. */
    if (p->optimize && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0) {
        snprintf(res->what, sizeof res->what, "seccomp_attr_set(OPTIMIZE)");
        goto out;
    }
    for (i = 0; i < p->n_archs; i++) {
        arch = seccomp_arch_resolve_name(p->archs[i]);
        if (arch == 0) {
            rc = -EINVAL;
            snprintf(res->what, sizeof res->what, "unknown architecture %s", p->archs[i]);
            goto out;
        }
        rc = seccomp_arch_add(ctx, arch);
        if (rc == -EEXIST) /* the native one is there from seccomp_init */
            rc = 0;
        if (rc < 0) {
            snprintf(res->what, sizeof res->what, "seccomp_arch_add %s", p->archs[i]);
            goto out;
        }
    }
    for (i = 0; i < p->n_rules; i++) {
        nr = seccomp_syscall_resolve_name(p->rules[i].name);
        if (nr == __NR_SCMP_ERROR) {
            res->n_unknown++;
            if (p->unknown)
                p->unknown[i] = 1;
            continue;
        }
        rc = add_rule(ctx, &p->rules[i], nr);
        if (rc < 0) {
            res->rule = (int32_t)i;
            snprintf(res->what, sizeof res->what, "seccomp_rule_add %s (action %#x, %zu args)",
                     p->rules[i].name, p->rules[i].action, p->rules[i].n_args);
            goto out;
        }
    }
    rc = seccomp_export_bpf(ctx, out_fd);
    if (rc < 0)
        snprintf(res->what, sizeof res->what, "seccomp_export_bpf");
out:
    seccomp_release(ctx);
    res->err = rc < 0 ? -rc : 0;
    return rc < 0 ? rc : 0;
}
