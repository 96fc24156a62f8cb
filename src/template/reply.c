/* reply.c — a model's reply, as decoded text, split into what a person or
 * an API client is shown: reasoning, content and tool calls (moeflash.h,
 * "replies").
 *
 * Two syntaxes cover the models we run:
 *  - tags (Qwen, DeepSeek, GLM-4.5...): <think>...</think> at the start of
 *    a reply (or after a prompt that opened it), then content, with tool
 *    calls as <tool_call>BODY</tool_call>. BODY is Qwen's (Hermes') JSON
 *    {"name": ..., "arguments": {...}}, or GLM-4.5's
 *    NAME\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>... where V is
 *    raw text for a string and JSON otherwise (the model's template writes
 *    it so).
 *  - harmony (gpt-oss; OpenAI's "harmony response format" guide): a reply
 *    is messages <|start|>assistant<|channel|>CH[ to=R][ <|constrain|>json]
 *    <|message|>BODY followed by <|end|>, or by <|return|> / <|call|> that
 *    end the turn; the first message's <|start|>assistant is the prompt's.
 *    The recipient may sit in the role part too ("assistant to=R<|channel|>").
 *    Channel analysis is reasoning; a message to a recipient (functions.NAME,
 *    or a built-in such as browser.search) is a tool call whose arguments
 *    are BODY; final and commentary preambles are content.
 *
 * The parser reads decoded text, not token ids: a marker is the same bytes
 * whether it came as a special token printed or as plain text pieces, so
 * one parser serves every vocabulary. It holds back only what a later
 * piece could change (a possible marker, blanks before a closing tag, an
 * unfinished tool call), so a reply fed whole and one fed a byte at a time
 * give the same events. Markers are ASCII, so no cut falls inside a UTF-8
 * character. It must not know about tokens or models.
 */
#include "moeflash.h"

#include <stdlib.h>
#include <string.h>

#ifdef MF_HAVE_JANSSON
#include <jansson.h>
#endif

#define TLEN(t) (sizeof(t) - 1)
static const char T_THINK[] = "<think>", T_ENDTHINK[] = "</think>";
static const char T_TOOL[] = "<tool_call>", T_ENDTOOL[] = "</tool_call>";
static const char H_START[] = "<|start|>", H_CHANNEL[] = "<|channel|>", H_MESSAGE[] = "<|message|>";
static const char H_END[] = "<|end|>", H_RETURN[] = "<|return|>", H_CALL[] = "<|call|>";

/* What ends a harmony message body. <|start|> and <|channel|> are there
 * for a model that skips <|end|>; they stay in the text (the header that
 * follows begins with them). */
static const struct { const char *s; size_t n; bool keep; } h_stops[] = {
    { H_END, TLEN(H_END), false }, { H_RETURN, TLEN(H_RETURN), false }, { H_CALL, TLEN(H_CALL), false },
    { H_START, TLEN(H_START), true }, { H_CHANNEL, TLEN(H_CHANNEL), true },
};
#define N_HSTOPS (sizeof h_stops / sizeof h_stops[0])

enum { HEAD_MAX = 512, NAME_MAX_LEN = 128 }; /* a longer "header" is not one; nor is a longer tool name */

enum state {
    S_PLAIN,     /* everything is content */
    S_START,     /* the reply's first bytes decide: <think>, a harmony header, or content */
    S_THINK, S_CONTENT, S_TOOL,    /* tags */
    S_HEAD, S_BODY,                /* harmony */
};

struct mf_reply {
    mf_reply_params p;
    enum state state;
    bool trim;                   /* drop leading blanks first */
    mf_reply_part kind;          /* S_BODY: what the message is */
    char name[NAME_MAX_LEN + 1]; /* S_BODY, kind TOOL_CALL: the recipient */
    char *buf;                   /* held-back text, buf[0..n), NUL-terminated */
    size_t n, cap;
};

static bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool has_prefix(const char *p, size_t n, const char *t, size_t tn) { return n >= tn && !memcmp(p, t, tn); }

/* Whether p[0..n) could still grow into t (a proper prefix of it). */
static bool may_become(const char *p, size_t n, const char *t, size_t tn) { return n < tn && !memcmp(p, t, n); }

/* Longest proper prefix of tag that ends p[0..n). */
static size_t partial_suffix(const char *p, size_t n, const char *tag, size_t tn)
{
    for (size_t k = tn - 1 < n ? tn - 1 : n; k > 0; k--)
        if (!memcmp(p + n - k, tag, k)) return k;
    return 0;
}

static void trim(const char **s, size_t *n)
{
    while (*n && blank(**s)) (*s)++, (*n)--;
    while (*n && blank((*s)[*n - 1])) (*n)--;
}

/* ---- formats ---- */

const char *mf_reply_format_name(mf_reply_format f)
{
    switch (f) {
    case MF_REPLY_AUTO: return "auto";
    case MF_REPLY_PLAIN: return "plain";
    case MF_REPLY_TAGS: return "tags";
    case MF_REPLY_HARMONY: return "harmony";
    }
    return "?";
}

mf_reply_format mf_reply_format_detect(const char *arch, const char *text, size_t len)
{
    static const char gen[] = "<|start|>assistant";
    if (arch && !strcmp(arch, "gpt-oss")) return MF_REPLY_HARMONY;
    if (!text) return MF_REPLY_TAGS;
    while (len && blank(text[len - 1])) len--;
    if (memmem(text, len, H_CHANNEL, TLEN(H_CHANNEL)) || (len >= TLEN(gen) && !memcmp(text + len - TLEN(gen), gen, TLEN(gen))))
        return MF_REPLY_HARMONY;
    return MF_REPLY_TAGS;
}

bool mf_reply_prompt_opens_think(const char *prompt, size_t len)
{
    const char *open = NULL, *close = NULL, *end = prompt + len;
    for (const char *p = prompt; p && p < end && (p = memchr(p, '<', (size_t)(end - p))); p++) {
        if (has_prefix(p, (size_t)(end - p), T_THINK, TLEN(T_THINK))) open = p;
        else if (has_prefix(p, (size_t)(end - p), T_ENDTHINK, TLEN(T_ENDTHINK))) close = p;
    }
    return open && (!close || close < open);
}

void mf_reply_params_init(mf_reply_params *p, const char *arch, const char *prompt, size_t len)
{
    memset(p, 0, sizeof *p);
    p->format = mf_reply_format_detect(arch, prompt, len);
    p->think_open = p->format == MF_REPLY_TAGS && prompt && mf_reply_prompt_opens_think(prompt, len);
}

/* ---- life cycle and the pending buffer ---- */

mf_reply *mf_reply_new(const mf_reply_params *p, mf_error *e)
{
    if (!p->emit) { mf_fail(e, "mf_reply_new: no emit callback"); return NULL; }
    mf_reply *r = calloc(1, sizeof *r);
    if (!r) { mf_fail(e, "out of memory"); return NULL; }
    r->p = *p;
    if (p->format == MF_REPLY_PLAIN) r->state = S_PLAIN;
    else if (p->format == MF_REPLY_HARMONY) r->state = S_HEAD;
    else if (p->think_open) r->state = S_THINK, r->trim = true; /* TAGS or AUTO */
    else r->state = S_START;
    return r;
}

void mf_reply_free(mf_reply *r)
{
    if (!r) return;
    free(r->buf);
    free(r);
}

static int add(mf_reply *r, const char *s, size_t n)
{
    if (r->n + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->n + n + 1) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        char *q = realloc(r->buf, cap);
        if (!q) return -1;
        r->buf = q;
        r->cap = cap;
    }
    if (n) memcpy(r->buf + r->n, s, n);
    r->n += n;
    r->buf[r->n] = 0;
    return 0;
}

static void drop(mf_reply *r, size_t n)
{
    if (n > r->n) n = r->n;
    memmove(r->buf, r->buf + n, r->n - n);
    r->n -= n;
    r->buf[r->n] = 0;
}

static int emit(mf_reply *r, mf_reply_part k, const char *s, size_t n, bool trim_end)
{
    while (trim_end && n && blank(s[n - 1])) n--;
    return n ? r->p.emit(r->p.user, k, s, n, NULL, 0) : 0;
}

static int emit_call(mf_reply *r, const char *name, size_t nn, const char *args, size_t na)
{
    return r->p.emit(r->p.user, MF_REPLY_TOOL_CALL, name, nn, args, na);
}

/* ---- tag tool calls: Qwen's JSON body, GLM-4.5's key/value body ---- */

/* A tool name as models write them: letters, digits, _ . - : / */
static bool tool_name_ok(const char *s, size_t n)
{
    if (!n || n > NAME_MAX_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-' || c == ':' || c == '/' || (unsigned char)c >= 0x80))
            return false;
    }
    return true;
}

#ifdef MF_HAVE_JANSSON
static const char T_KEY[] = "<arg_key>", T_ENDKEY[] = "</arg_key>";
static const char T_VAL[] = "<arg_value>", T_ENDVAL[] = "</arg_value>";

/* {"name": "...", "arguments": {...} or "..."}: 0 emitted, 1 not that
 * syntax, else the callback's value or -1. */
static int json_tool(mf_reply *r, const char *s, size_t n)
{
    json_error_t je;
    json_t *o = json_loadb(s, n, 0, &je);
    json_t *name = json_object_get(o, "name"), *args = json_object_get(o, "arguments");
    if (!json_is_object(o) || !json_is_string(name) || (args && !json_is_object(args) && !json_is_string(args))) {
        json_decref(o);
        return 1;
    }
    char *a = !args ? strdup("{}") : json_is_string(args) ? strdup(json_string_value(args))
                                                          : json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = a ? emit_call(r, json_string_value(name), json_string_length(name), a, strlen(a)) : -1;
    free(a);
    json_decref(o);
    return rc;
}

/* NAME then <arg_key>K</arg_key> <arg_value>V</arg_value> pairs, blanks
 * between: 0 emitted, 1 not that syntax, else the callback's or -1. */
static int glm_tool(mf_reply *r, const char *s, size_t n)
{
    const char *end = s + n, *k = memmem(s, n, T_KEY, TLEN(T_KEY));
    const char *name = s;
    size_t nn = (size_t)((k ? k : end) - s);
    trim(&name, &nn);
    if (!tool_name_ok(name, nn)) return 1;
    json_t *args = json_object();
    if (!args) return -1;
    int rc = 1;
    for (const char *p = k ? k : end;;) {
        while (p < end && blank(*p)) p++;
        if (p == end) { rc = 0; break; }
        if (!has_prefix(p, (size_t)(end - p), T_KEY, TLEN(T_KEY))) break;
        const char *kb = p + TLEN(T_KEY), *ke = memmem(kb, (size_t)(end - kb), T_ENDKEY, TLEN(T_ENDKEY));
        if (!ke) break;
        p = ke + TLEN(T_ENDKEY);
        while (p < end && blank(*p)) p++;
        if (!has_prefix(p, (size_t)(end - p), T_VAL, TLEN(T_VAL))) break;
        const char *vb = p + TLEN(T_VAL), *ve = memmem(vb, (size_t)(end - vb), T_ENDVAL, TLEN(T_ENDVAL));
        if (!ve) break;
        p = ve + TLEN(T_ENDVAL);
        size_t kn = (size_t)(ke - kb);
        trim(&kb, &kn);
        char *key = strndup(kb, kn);
        if (!key) { rc = -1; break; }
        json_error_t je;
        json_t *v = json_loadb(vb, (size_t)(ve - vb), JSON_DECODE_ANY, &je);
        if (v && json_is_string(v)) { json_decref(v); v = NULL; } /* strings are written raw: quotes are text */
        if (!v) v = json_stringn(vb, (size_t)(ve - vb));
        /* not UTF-8, or a NUL in the key: not a call a client could take */
        bool bad = !v || strlen(key) != kn;
        if (bad) json_decref(v);
        else bad = json_object_set_new(args, key, v) != 0; /* takes v either way */
        free(key);
        if (bad) break;
    }
    if (!rc) {
        char *a = json_dumps(args, JSON_COMPACT);
        rc = a ? emit_call(r, name, nn, a, strlen(a)) : -1;
        free(a);
    }
    json_decref(args);
    return rc;
}
#else
static int json_tool(mf_reply *r, const char *s, size_t n) { (void)r, (void)s, (void)n; return 1; }
static int glm_tool(mf_reply *r, const char *s, size_t n) { (void)r, (void)s, (void)n; return 1; }
#endif

/* The body of a <tool_call>; anything that is neither syntax is given
 * back as content, tags included. */
static int tag_tool(mf_reply *r, const char *s, size_t n, bool closed)
{
    const char *b = s;
    size_t bn = n;
    trim(&b, &bn);
    int rc = bn && b[0] == '{' ? json_tool(r, b, bn) : glm_tool(r, b, bn);
    if (rc != 1) return rc;
    rc = r->p.emit(r->p.user, MF_REPLY_CONTENT, T_TOOL, TLEN(T_TOOL), NULL, 0);
    if (!rc) rc = emit(r, MF_REPLY_CONTENT, s, n, false);
    if (!rc && closed) rc = r->p.emit(r->p.user, MF_REPLY_CONTENT, T_ENDTOOL, TLEN(T_ENDTOOL), NULL, 0);
    return rc;
}

/* ---- harmony headers ---- */

/* The word after "to=" in h, if any. */
static void recipient(const char *h, size_t n, const char **to, size_t *tn)
{
    *to = NULL;
    *tn = 0;
    for (const char *p = h; (p = memmem(p, n - (size_t)(p - h), "to=", 3)); p += 3) {
        if (p > h && !blank(p[-1]) && p[-1] != '>') continue; /* "goto=" is not a recipient */
        const char *b = p + 3, *e = b;
        while (e < h + n && !blank(*e) && *e != '<') e++;
        *to = b;
        *tn = (size_t)(e - b);
        return;
    }
}

/* Decides what the message with header h[0..n) is. */
static void harmony_header(mf_reply *r, const char *h, size_t n)
{
    const char *to, *ch = memmem(h, n, H_CHANNEL, TLEN(H_CHANNEL));
    size_t tn, cn = 0;
    recipient(h, n, &to, &tn);
    if (ch) {
        ch += TLEN(H_CHANNEL);
        while (ch < h + n && blank(*ch)) ch++;
        while (ch + cn < h + n && !blank(ch[cn]) && ch[cn] != '<') cn++;
    }
    static const char fn[] = "functions.";
    if (to && tn > TLEN(fn) && !memcmp(to, fn, TLEN(fn))) to += TLEN(fn), tn -= TLEN(fn);
    bool call = to && r->p.tools && !(tn == 9 && !memcmp(to, "assistant", 9)) && tool_name_ok(to, tn);
    if (call) {
        r->kind = MF_REPLY_TOOL_CALL;
        memcpy(r->name, to, tn);
        r->name[tn] = 0;
    } else r->kind = ch && cn == 8 && !memcmp(ch, "analysis", 8) ? MF_REPLY_REASONING : MF_REPLY_CONTENT;
}

/* Earliest message terminator in p[0..n): its index in h_stops, or -1. */
static int harmony_stop(const char *p, size_t n, size_t *at)
{
    int best = -1;
    *at = n;
    for (size_t i = 0; i < N_HSTOPS; i++) {
        const char *s = memmem(p, *at, h_stops[i].s, h_stops[i].n);
        if (s) { *at = (size_t)(s - p); best = (int)i; }
    }
    return best;
}

/* ---- the state machine ---- */

/* Consumes as much of the pending text as can be decided; final: all. */
static int step(mf_reply *r, bool final)
{
    for (;;) {
        if (r->trim) {
            size_t i = 0;
            while (i < r->n && blank(r->buf[i])) i++;
            drop(r, i);
            if (!r->n) return 0;
            r->trim = false;
        }
        if (!r->n) return 0;
        const char *p = r->buf;
        size_t n = r->n;
        int rc;
        switch (r->state) {
        case S_PLAIN:
            rc = emit(r, MF_REPLY_CONTENT, p, n, false);
            r->n = 0;
            return rc;

        case S_START: {
            size_t i = 0;
            while (i < n && blank(p[i])) i++;
            const char *q = p + i;
            size_t rest = n - i;
            if (r->p.format == MF_REPLY_AUTO &&
                (has_prefix(q, rest, H_CHANNEL, TLEN(H_CHANNEL)) || has_prefix(q, rest, H_START, TLEN(H_START)))) {
                r->state = S_HEAD;
                continue;
            }
            if (has_prefix(q, rest, T_THINK, TLEN(T_THINK))) {
                drop(r, i + TLEN(T_THINK));
                r->state = S_THINK;
                r->trim = true;
                continue;
            }
            bool undecided = may_become(q, rest, T_THINK, TLEN(T_THINK)) ||
                             (r->p.format == MF_REPLY_AUTO && (may_become(q, rest, H_CHANNEL, TLEN(H_CHANNEL)) ||
                                                               may_become(q, rest, H_START, TLEN(H_START))));
            if (!final && (undecided || rest == 0)) return 0;
            r->state = S_CONTENT;
            continue;
        }

        case S_THINK: {
            const char *e = memmem(p, n, T_ENDTHINK, TLEN(T_ENDTHINK));
            if (e) {
                if ((rc = emit(r, MF_REPLY_REASONING, p, (size_t)(e - p), true))) return rc;
                drop(r, (size_t)(e - p) + TLEN(T_ENDTHINK));
                r->state = S_CONTENT;
                r->trim = true;
                continue;
            }
            size_t keep = final ? 0 : partial_suffix(p, n, T_ENDTHINK, TLEN(T_ENDTHINK));
            while (!final && keep < n && blank(p[n - keep - 1])) keep++;
            if ((rc = emit(r, MF_REPLY_REASONING, p, n - keep, final))) return rc;
            drop(r, n - keep);
            return 0;
        }

        case S_CONTENT: {
            if (!r->p.tools) {
                rc = emit(r, MF_REPLY_CONTENT, p, n, false);
                r->n = 0;
                return rc;
            }
            const char *t = memmem(p, n, T_TOOL, TLEN(T_TOOL));
            if (t) {
                if ((rc = emit(r, MF_REPLY_CONTENT, p, (size_t)(t - p), true))) return rc;
                drop(r, (size_t)(t - p) + TLEN(T_TOOL));
                r->state = S_TOOL;
                continue;
            }
            size_t keep = final ? 0 : partial_suffix(p, n, T_TOOL, TLEN(T_TOOL));
            while (!final && keep < n && blank(p[n - keep - 1])) keep++;
            if ((rc = emit(r, MF_REPLY_CONTENT, p, n - keep, false))) return rc;
            drop(r, n - keep);
            return 0;
        }

        case S_TOOL: {
            /* wait for the closing tag; at the end, a complete body
             * without it still counts (the model stopped right after) */
            const char *e = memmem(p, n, T_ENDTOOL, TLEN(T_ENDTOOL));
            if (!e && !final) return 0;
            size_t body = e ? (size_t)(e - p) : n;
            if ((rc = tag_tool(r, p, body, e != NULL))) return rc;
            drop(r, e ? body + TLEN(T_ENDTOOL) : n);
            r->state = S_CONTENT;
            r->trim = true;
            continue;
        }

        case S_HEAD: {
            /* blanks between messages are nobody's */
            size_t i = 0;
            while (i < n && blank(p[i])) i++;
            if (i) { drop(r, i); continue; }
            bool start = has_prefix(p, n, H_START, TLEN(H_START)) || has_prefix(p, n, H_CHANNEL, TLEN(H_CHANNEL));
            if (start) {
                const char *m = memmem(p, n, H_MESSAGE, TLEN(H_MESSAGE));
                if (m && (size_t)(m - p) <= HEAD_MAX) {
                    harmony_header(r, p, (size_t)(m - p));
                    drop(r, (size_t)(m - p) + TLEN(H_MESSAGE));
                    r->state = S_BODY;
                    continue;
                }
                if (!m && n <= HEAD_MAX && !final) return 0;
                if (!m && final) { r->n = 0; return 0; } /* cut off inside a header: nothing to show */
            } else if (!final && (may_become(p, n, H_START, TLEN(H_START)) || may_become(p, n, H_CHANNEL, TLEN(H_CHANNEL)))) {
                return 0;
            }
            /* not a header: text the model wrote outside the format (or a
             * header too long to be one) is content until a marker */
            r->kind = MF_REPLY_CONTENT;
            r->state = S_BODY;
            if (start) { /* its first marker is text, not the end of this body */
                size_t k = has_prefix(p, n, H_START, TLEN(H_START)) ? TLEN(H_START) : TLEN(H_CHANNEL);
                if ((rc = emit(r, MF_REPLY_CONTENT, p, k, false))) return rc;
                drop(r, k);
            }
            continue;
        }

        case S_BODY: {
            size_t at;
            int s = harmony_stop(p, n, &at);
            size_t used = s < 0 ? at : at + (h_stops[s].keep ? 0 : h_stops[s].n);
            if (r->kind == MF_REPLY_TOOL_CALL) {
                if (s < 0 && !final) return 0;
                const char *a = p;
                size_t an = at;
                trim(&a, &an);
                if (!an) a = "{}", an = 2;
                if ((rc = emit_call(r, r->name, strlen(r->name), a, an))) return rc;
                drop(r, used);
                r->state = S_HEAD;
                continue;
            }
            if (s >= 0) {
                if ((rc = emit(r, r->kind, p, at, false))) return rc;
                drop(r, used);
                r->state = S_HEAD;
                continue;
            }
            size_t keep = 0;
            for (size_t i = 0; !final && i < N_HSTOPS; i++) {
                size_t k = partial_suffix(p, n, h_stops[i].s, h_stops[i].n);
                if (k > keep) keep = k;
            }
            if ((rc = emit(r, r->kind, p, n - keep, false))) return rc;
            drop(r, n - keep);
            return 0;
        }
        }
        return 0;
    }
}

int mf_reply_feed(mf_reply *r, const char *s, size_t n)
{
    if (add(r, s, n)) return -1;
    return step(r, false);
}

int mf_reply_finish(mf_reply *r) { return step(r, true); }
