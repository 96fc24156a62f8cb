/* chat.c — the public chat-template API: a model's template, a request,
 * the rendered prompt.
 *
 * The request is the JSON object an OpenAI-style client sends (messages,
 * tools, add_generation_prompt, enable_thinking, anything else the template
 * reads); it becomes the template's variables exactly as Hugging Face's
 * apply_chat_template passes them: tools is None when absent,
 * add_generation_prompt False, and other keys are defined only when given.
 * bos_token/eos_token are the texts of the model's special tokens. A model
 * without tokenizer.chat_template renders with the ChatML template below.
 */
#include "moeflash.h"
#include "gguf.h"
#include "template/template.h"

#include <stdlib.h>
#include <string.h>
#ifdef MF_HAVE_JANSSON
#include <jansson.h>
#endif

struct mf_chat_template {
    tmpl *t;
    char *bos, *eos;     /* NULL: take them from the request */
    bool fallback;
};

/* Hugging Face's former default template (ChatML). */
static const char chatml[] =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const char *mf_chat_template_chatml(void) { return chatml; }

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static mf_chat_template *ct_new(const char *template_src, const char *bos_token, const char *eos_token, mf_error *e)
{
    mf_chat_template *ct = calloc(1, sizeof *ct);
    if (!ct) { mf_fail(e, "out of memory"); return NULL; }
    if (!template_src) { template_src = chatml; ct->fallback = true; }
    ct->t = tmpl_parse(template_src, strlen(template_src), e);
    if (!ct->t) {
        free(ct);
        return NULL;
    }
    if ((bos_token && !(ct->bos = dup_n(bos_token, strlen(bos_token)))) ||
        (eos_token && !(ct->eos = dup_n(eos_token, strlen(eos_token))))) {
        mf_chat_template_free(ct);
        mf_fail(e, "out of memory");
        return NULL;
    }
    return ct;
}

/* The text of special token key (an id) in f, or "" when the key is absent. */
static int token_text(const gguf_file *f, const char *key, char **out, mf_error *e)
{
    *out = NULL;
    uint32_t id;
    if (gguf_opt_u32(f, key, UINT32_MAX, &id, e)) return -1;
    if (id == UINT32_MAX) { *out = dup_n("", 0); return *out ? 0 : mf_fail(e, "out of memory"); }
    const gguf_value *toks;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &toks, e)) return -1;
    if (id >= toks->v.arr.n)
        return mf_fail(e, "key %s: token id %u is outside the vocabulary (%llu tokens)", key, id,
                       (unsigned long long)toks->v.arr.n);
    const gguf_str *s = &toks->v.arr.items[id].v.s;
    *out = dup_n(s->p, (size_t)s->n);
    return *out ? 0 : mf_fail(e, "out of memory");
}

mf_chat_template *mf_chat_template_new(const char *template_src, const char *bos_token,
                                       const char *eos_token, mf_error *e)
{
    mf_chat_template *ct = ct_new(template_src, bos_token, eos_token, e);
    if (!ct) mf_fail_wrap(e, "chat template");
    return ct;
}

mf_chat_template *mf_chat_template_from_model(const char *model_path, const char *template_src, mf_error *e)
{
    gguf_file *f = gguf_open(model_path, e);
    if (!f) return NULL;
    mf_chat_template *ct = NULL;
    char *bos = NULL, *eos = NULL;
    const char *src = template_src;
    if (!src && gguf_find(f, "tokenizer.chat_template") && gguf_get_str(f, "tokenizer.chat_template", &src, e)) goto done;
    if (token_text(f, "tokenizer.ggml.bos_token_id", &bos, e) || token_text(f, "tokenizer.ggml.eos_token_id", &eos, e))
        goto done;
    ct = ct_new(src, bos, eos, e);
    if (!ct) mf_fail_wrap(e, "%s: %s", model_path, template_src ? "--template" : "tokenizer.chat_template");
done:
    free(bos);
    free(eos);
    gguf_close(f);
    return ct;
}

void mf_chat_template_free(mf_chat_template *ct)
{
    if (!ct) return;
    tmpl_free(ct->t);
    free(ct->bos);
    free(ct->eos);
    free(ct);
}

bool mf_chat_template_is_fallback(const mf_chat_template *ct) { return ct->fallback; }

#ifdef MF_HAVE_JANSSON
int mf_chat_template_apply(const mf_chat_template *ct, const char *request_json,
                           char **out, size_t *out_len, mf_error *e)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    json_error_t je;
    json_t *req = json_loads(request_json, JSON_ALLOW_NUL, &je);
    if (!req) return mf_fail(e, "chat request: invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    int rc = -1;
    char *vars = NULL;
    if (!json_is_object(req)) { mf_fail(e, "chat request: expected a JSON object"); goto done; }
    if (!json_is_array(json_object_get(req, "messages"))) {
        mf_fail(e, "chat request: \"messages\" must be an array of messages");
        goto done;
    }
    /* what apply_chat_template always passes */
    if (!json_object_get(req, "tools")) json_object_set_new(req, "tools", json_null());
    if (!json_object_get(req, "add_generation_prompt")) json_object_set_new(req, "add_generation_prompt", json_false());
    if (ct->bos) json_object_set_new(req, "bos_token", json_string(ct->bos));
    else if (!json_object_get(req, "bos_token")) json_object_set_new(req, "bos_token", json_string(""));
    if (ct->eos) json_object_set_new(req, "eos_token", json_string(ct->eos));
    else if (!json_object_get(req, "eos_token")) json_object_set_new(req, "eos_token", json_string(""));
    vars = json_dumps(req, JSON_COMPACT);
    if (!vars) { mf_fail(e, "out of memory"); goto done; }
    rc = tmpl_render(ct->t, vars, strlen(vars), NULL, out, out_len, e);
    if (rc) mf_fail_wrap(e, "chat template");
done:
    free(vars);
    json_decref(req);
    return rc;
}
#else
int mf_chat_template_apply(const mf_chat_template *ct, const char *request_json,
                           char **out, size_t *out_len, mf_error *e)
{
    (void)ct;
    (void)request_json;
    *out = NULL;
    if (out_len) *out_len = 0;
    return mf_fail(e, "chat templates need jansson, which this build of moeflash lacks");
}
#endif

int mf_chat_render(const char *template_src, const char *request_json, const char *bos_token,
                   const char *eos_token, char **out, size_t *out_len, mf_error *e)
{
    *out = NULL;
    mf_chat_template *ct = mf_chat_template_new(template_src, bos_token, eos_token, e);
    if (!ct) return -1;
    int rc = mf_chat_template_apply(ct, request_json, out, out_len, e);
    mf_chat_template_free(ct);
    return rc;
}

int mf_chat_render_model(const char *model_path, const char *template_src, const char *request_json,
                         char **out, size_t *out_len, mf_error *e)
{
    *out = NULL;
    mf_chat_template *ct = mf_chat_template_from_model(model_path, template_src, e);
    if (!ct) return -1;
    int rc = mf_chat_template_apply(ct, request_json, out, out_len, e);
    mf_chat_template_free(ct);
    return rc;
}
