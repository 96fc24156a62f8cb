/* budget.c — what `--cache auto` means: a share of the memory this process
 * can really use. MemAvailable alone is not enough: under a memory cgroup
 * (containers, systemd slices, our own memcap benchmarks) the limit is the
 * cgroup's, and the page cache counts against it. */
#include "store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static uint64_t read_u64(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char buf[64];
    uint64_t v = 0;
    if (fgets(buf, sizeof buf, fp)) {
        if (!strncmp(buf, "max", 3)) v = UINT64_MAX;
        else sscanf(buf, "%" SCNu64, &v);
    }
    fclose(fp);
    return v;
}

static uint64_t mem_available(void)
{
    FILE *fp = fopen("/proc/meminfo", "r");
    if (!fp) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "MemAvailable: %" SCNu64, &kb) == 1) break;
    fclose(fp);
    return kb * 1024;
}

/* This process's memory cgroups (v1 or v2): the tightest limit, and the
 * least room left under a limit (limit minus usage; usage counts page
 * cache the kernel reclaims when it must). UINT64_MAX for no limit. */
static void cgroup_memory(uint64_t *limit, uint64_t *room)
{
    *limit = *room = UINT64_MAX;
    FILE *fp = fopen("/proc/self/cgroup", "r");
    if (!fp) return;
    char line[1024], path[1200];
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        const char *ctrl = c1 + 1, *cg = c2 + 1;
        uint64_t lim = 0, use = 0;
        if (strstr(ctrl, "memory")) { /* v1 */
            snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", cg);
            lim = read_u64(path);
            snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", cg);
            use = read_u64(path);
        } else if (!*ctrl && line[0] == '0') { /* v2 */
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", cg);
            lim = read_u64(path);
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", cg);
            use = read_u64(path);
        }
        /* v1 reports "no limit" as a huge number */
        if (lim && lim < (1ull << 60)) {
            uint64_t r = lim > use ? lim - use : 0;
            if (r < *room) *room = r;
            if (lim < *limit) *limit = lim;
        }
    }
    fclose(fp);
}

uint64_t store_memory_limit(void)
{
    uint64_t avail = mem_available(), lim, room;
    cgroup_memory(&lim, &room);
    if (avail == 0) return lim;
    return lim < avail ? lim : avail;
}

uint64_t store_auto_cache_bytes(uint64_t resident_bytes, uint64_t kv_bytes)
{
    uint64_t avail = mem_available(), lim, room;
    cgroup_memory(&lim, &room);
    /* usage already counts what this process touched of the resident set;
     * take the larger of the two views of what is left to be safe */
    if (room != UINT64_MAX) {
        if (room < avail || avail == 0) avail = room;
    }
    uint64_t need = resident_bytes + kv_bytes + (64ull << 20);
    if (avail <= need) return 0;
    return (avail - need) / 10 * 9;
}
