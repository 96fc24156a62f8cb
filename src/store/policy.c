/* policy.c — the policies by name, and which one is the default.
 *
 * The default is chosen by measurement (`moeflash replay --sim` on the
 * shared routing traces at 10%, 25% and 50% of all experts and below one
 * token's working set; the table is in the closing note): it must
 * beat global LRU on every trace at every size.
 */
#include "store/policy.h"

#include <string.h>

#define DEFAULT_POLICY "nextuse"

const char *policy_default_name(void) { return DEFAULT_POLICY; }
const char *policy_names(void) { return "lru lru-layer lfu lrfu hot nextuse"; }

store_policy *policy_new(const char *name, const store_policy_params *pp, mf_error *e)
{
    if (!name || !*name) name = DEFAULT_POLICY;
    store_policy *p = NULL;
    if (!strcmp(name, "hot")) return policy_hot_new(pp, e);
    if (!strcmp(name, "lru")) p = policy_lru_new(pp);
    else if (!strcmp(name, "lru-layer")) p = policy_lru_layer_new(pp);
    else if (!strcmp(name, "lfu")) p = policy_lfu_new(pp);
    else if (!strcmp(name, "lrfu")) p = policy_lrfu_new(pp);
    else if (!strcmp(name, "nextuse")) p = policy_nextuse_new(pp);
    else {
        mf_fail(e, "unknown cache policy '%s' (expected one of: %s)", name, policy_names());
        return NULL;
    }
    if (!p) mf_fail(e, "out of memory for the cache policy");
    return p;
}

int policy_save(store_policy *p, const char *path, mf_error *e)
{
    return p && p->ops->save && path ? p->ops->save(p, path, e) : 0;
}
