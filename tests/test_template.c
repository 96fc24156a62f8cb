/* test_template.c — the chat-template interpreter (src/template).
 *
 * The golden chat cases render byte-identical to jinja2; unit tests cover
 * each statement, expression, string method, filter and test, and the
 * whitespace control, against outputs generated with jinja2 3.1 in Hugging
 * Face's environment (trim_blocks, lstrip_blocks, loopcontrols, tojson as
 * json.dumps). Errors must name the template line and column; hostile
 * templates (runaway loops, recursion, huge ranges, deep nesting, every
 * truncation, random corruption) must fail cleanly and quickly.
 */
#include "t.h"
#include "moeflash.h"
#include "gguf.h"
#include "template/template.h"

#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#ifdef MF_HAVE_JANSSON
#include <jansson.h>
#endif

typedef struct tcase { const char *tmpl, *want; } tcase;

/* ---- expected outputs, generated with jinja2 3.1 (HF environment) ---- */

static const tcase cases_statements[] = {
    { "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}|{% if e %}x{% elif not e %}empty{% endif %}",
      "big|empty" },
    { "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
      "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;" },
    { "{% for x in xs %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} {{ loop.cycle('a', 'b') }}|{% endfor %}",
      "<3>1 a|3<1>2 b|1<2> a|" },
    { "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for k, v in d|items %}{{ k }}{% endfor %}|{% for k, v in d|dictsort %}{{ k }}{% endfor %}",
      "b=1;a=[1, 2, {'c': None}];|ba|ba|ab" },
    { "{% for u in users if u.age > 0 %}{{ u.name }}/{{ loop.length }}{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}",
      "b/1|empty" },
    { "{% for x in xs %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
      "3" },
    { "{% for i in [1, 2] %}{% for j in [3, 4] %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }}{% endfor %}",
      "113 214 1123 224 2" },
    { "{% set a = 1 %}{% set b, c = 2, 3 %}{{ a }}{{ b }}{{ c }}|{% set y = 1 %}{% for x in xs %}{% set y = y + x %}{{ y }}{% endfor %}|{{ y }}",
      "123|423|1" },
    { "{% set ns = namespace(total=0, seen=[]) %}{% for x in xs %}{% set ns.total = ns.total + x %}{% set ns.seen = ns.seen + [x] %}{% endfor %}{{ ns.total }}{{ ns.seen }}",
      "6[3, 1, 2]" },
    { "{% set block %}inside {{ n }}{% endset %}[{{ block }}]{% set t2 | upper %}  up  {% endset %}[{{ t2 }}]",
      "[inside 7][  UP  ]" },
    { "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(name='c') }} {{ greet(punct='.', name='d') }}",
      "Hi a! Hi b? Hi c! Hi d." },
    { "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}|{% macro rec(k) %}{% if k > 0 %}{{ k }}{{ rec(k - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}",
      "1(2, 3){'k': 'v'}|321" },
    { "{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}in {{ n }}{% endcall %}|{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each(xs) %}<{{ v }}>{% endcall %}",
      "[in 7]|<3><1><2>" },
    { "{% filter upper %}shout {{ n }}{% endfilter %}|{% with a = 1, b = n %}{{ a + b }}{% endwith %}|{% generation %}gen{% endgeneration %}",
      "SHOUT 7|8|gen" },
    { "{% for item in [{'c': [{'c': []}, {'c': []}]}] recursive %}<{{ loop.depth }}{% if item.c %}{{ loop(item.c) }}{% endif %}>{% endfor %}",
      "<1<2><2>>" },
    { "{% raw %}{{ not rendered }} {% if %}{% endraw %}",
      "{{ not rendered }} {% if %}" },
    { "{% macro m() %}{{ late }}{% endmacro %}{% set late = 'seen' %}{{ m() }}|{% if true %}{% set z = 3 %}{% endif %}{{ z }}|{% for x in [1] %}{% set inner = 1 %}{% endfor %}{{ inner is defined }}",
      "seen|3|False" },
};

static const tcase cases_expressions[] = {
    { "{{ n + 1 }} {{ n - 10 }} {{ n * 2 }} {{ n / 2 }} {{ n // 2 }} {{ n % 3 }} {{ -n % 3 }} {{ -n // 2 }} {{ n ** 2 }} {{ 2 ** -1 }} {{ f * 2 }} {{ 7.5 % 2 }} {{ 10 // 4.0 }}",
      "8 -3 14 3.5 3 1 2 -4 49 0.5 5.0 1.5 2.0" },
    { "{{ 1.0 }} {{ 1e-5 }} {{ 1e16 }} {{ 1e15 }} {{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ -0.0 }} {{ 2 ** 62 }} {{ 1e300 * 1e300 }} {{ 123456789.125 }}",
      "1.0 1e-05 1e+16 1000000000000000.0 0.30000000000000004 0.3333333333333333 -0.0 4611686018427387904 inf 123456789.125" },
    { "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }} {{ 2 >= 2 }} {{ 'b' <= 'a' }}",
      "True False True True True True True True False" },
    { "{{ 'a' in 'cat' }} {{ 3 not in xs }} {{ 'b' in d }} {{ [1, 2] in [[1, 2]] }} {{ none in [none] }} {{ {'a': 1} == {'a': 1} }}",
      "True False True True True True" },
    { "{{ 'yes' if t else 'no' }} {{ 'x' if none }}|{{ none or 'fallback' }} {{ n and 'and' }} {{ e or 0 }} {{ not none }} {{ not xs }}",
      "yes |fallback and 0 True False" },
    { "{{ 'abc' ~ 1 ~ 2.5 ~ none ~ true ~ [1] }} {{ 'ab' + 'cd' }} {{ [1] + [2] }} {{ 'ab' * 2 }} {{ [0] * 3 }} {{ (1,) + (2,) }}",
      "abc12.5NoneTrue[1] abcd [1, 2] abab [0, 0, 0] (1, 2)" },
    { "{{ xs[0] }} {{ xs[-1] }} {{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[::2] }} {{ u[1] }} {{ u[::-1] }} {{ u[-5:] }} {{ d.a[2].c }} {{ d['a'][0] }} {{ xs.0 }}",
      "3 2 [1, 2] [3, 1] [2, 1, 3] [3, 2] \xc3\xa9 \xe2\x98\x83 dlr\xc3\xb6w oll\xc3\xa9h rld \xe2\x98\x83 None 1 3" },
    { "{{ xs }} {{ d }} {{ (1, 2) }} {{ (1,) }} {{ () }} {{ {} }} {{ none }} {{ t }} {{ \"it's\" }} {{ ['a\\nb', 'q\"', \"s'\"] }} {{ u }} {{ [u] }}",
      "[3, 1, 2] {'b': 1, 'a': [1, 2, {'c': None}]} (1, 2) (1,) () {} None True it's ['a\\nb', 'q\"', \"s'\"] h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83 ['h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83']" },
    { "{{ missing }}|{{ d.missing }}|{{ xs[10] }}|{{ d.missing is defined }}|{{ missing is undefined }}",
      "|||False|True" },
    { "{{ d.get('b') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.keys()|list }} {{ d.values()|list|length }} {{ d.items()|list|first }}",
      "1 None 5 ['b', 'a'] 2 ('b', 1)" },
    { "{{ '%s is %d' % ('n', 3) }} {{ '%05.1f|%-3s|%x' % (3.14159, 'ab', 255) }} {{ '{} + {}'.format(1, 2) }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{n}!'.format(n='z') }}",
      "n is 3 003.1|ab |ff 1 + 2 aba z!" },
    { "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ namespace(a=1).a }} {{ dict(a=1, b=2) }}",
      "[0, 1, 2] [1, 3, 5] [5, 3, 1] 1 {'a': 1, 'b': 2}" },
};

static const tcase cases_strings[] = {
    { "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ s.split(',') }}|{{ s.split() }}|{{ s.upper() }}|{{ s.lower() }}",
      "Hello, World|Hello, World  |  Hello, World|a|['  Hello', ' World  ']|['Hello,', 'World']|  HELLO, WORLD  |  hello, world  " },
    { "{{ 'a,b,,c'.split(',') }} {{ 'a,b,,c'.split(',', 1) }} {{ 'a,b,,c'.rsplit(',', 1) }} {{ '  a  b  '.split(none, 1) }} {{ ''.split(',') }} {{ ''.split() }}",
      "['a', 'b', '', 'c'] ['a', 'b,,c'] ['a,b,', 'c'] ['a', 'b  '] [''] []" },
    { "{{ 'Hello World'.startswith('Hell') }} {{ 'Hello'.endswith(('lo', 'x')) }} {{ 'abc'.find('c') }} {{ 'abc'.find('z') }} {{ 'abcabc'.rfind('b') }} {{ 'abab'.count('ab') }} {{ 'abc'.index('b') }}",
      "True True 2 -1 4 2 1" },
    { "{{ 'aXbXc'.replace('X', '-') }} {{ 'aXbXc'.replace('X', '-', 1) }} {{ ', '.join(['a', 'b']) }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'a\\nb\\r\\nc'.splitlines() }}",
      "a-b-c a-bXc a, b Hello World Hello ['a', 'b', 'c']" },
    { "{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ 'AB'.isupper() }} {{ 'ab'.islower() }} {{ ' '.isspace() }} {{ 'ab'.center(6, '*') }} {{ 'ab'.ljust(4) }}| {{ 'ab'.rjust(4) }}",
      "True True True True True **ab** ab  |   ab" },
    { "{{ u|length }} {{ u|upper }} {{ u.find('w') }} {{ u.split() }} {{ u.title() }} {{ '\xc3\x9f'|upper }} {{ u|tojson }} {{ u|tojson(ensure_ascii=true) }}",
      "13 H\xc3\x89LLO W\xc3\x96RLD \xe2\x98\x83 6 ['h\xc3\xa9llo', 'w\xc3\xb6rld', '\xe2\x98\x83'] H\xc3\xa9llo W\xc3\xb6rld \xe2\x98\x83 SS \"h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83\" \"h\\u00e9llo w\\u00f6rld \\u2603\"" },
};

static const tcase cases_filters[] = {
    { "{{ xs|sort }} {{ xs|sort(reverse=true) }} {{ ['b', 'A', 'a']|sort }} {{ users|sort(attribute='name')|map(attribute='age')|list }} {{ xs|reverse|list }} {{ 'abc'|reverse }}",
      "[1, 2, 3] [3, 2, 1] ['A', 'a', 'b'] [0, 2] [2, 1, 3] cba" },
    { "{{ xs|length }} {{ xs|count }} {{ 'abc'|length }} {{ d|length }} {{ xs|first }} {{ xs|last }} {{ 'abc'|first }} {{ xs|min }} {{ xs|max }} {{ xs|sum }} {{ users|sum(attribute='age') }}",
      "3 3 3 2 3 2 a 1 3 6 2" },
    { "{{ xs|join }} {{ xs|join('-') }} {{ users|join(', ', attribute='name') }} {{ xs|list }} {{ 'ab'|list }} {{ d|list }} {{ d|items|list }} {{ d|dictsort }}",
      "312 3-1-2 b, a [3, 1, 2] ['a', 'b'] ['b', 'a'] [('b', 1), ('a', [1, 2, {'c': None}])] [('a', [1, 2, {'c': None}]), ('b', 1)]" },
    { "{{ e|default('dflt') }} {{ e|default('dflt', true) }} {{ missing|default('undef') }} {{ missing|d('d') }} {{ none|default('x') }}",
      " dflt undef d None" },
    { "{{ s|trim }}|{{ 'xhix'|trim('x') }}|{{ s|upper }}|{{ s|lower }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}|{{ 'a-b c(d'|title }}|{{ 'abc'|replace('b', 'B') }}",
      "Hello, World|hi|  HELLO, WORLD  |  hello, world  |Hello World|Hello|A-B C(D|aBc" },
    { "{{ 3.7|int }} {{ '42'|int }} {{ '4.5'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '0x1A'|int(0, 16) }} {{ '2.5'|float }} {{ 3|float }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.567|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ -3|abs }}",
      "3 42 4 0 7 26 2.5 3.0 2.0 4.0 2.57 3.0 3" },
    { "{{ n|string }}{{ t|string }}{{ none|string }}{{ xs|string }} {{ 'x'|safe }} {{ '<a href=\"x\">&'|e }} {{ '<b>'|escape }}",
      "7TrueNone[3, 1, 2] x &lt;a href=&#34;x&#34;&gt;&amp; &lt;b&gt;" },
    { "{{ users|map(attribute='name')|list }} {{ ['a', 'b']|map('upper')|list }} {{ xs|map('string')|join }} {{ users|map(attribute='nope', default='D')|list }}",
      "['b', 'a'] ['A', 'B'] 312 ['D', 'D']" },
    { "{{ users|selectattr('age')|map(attribute='name')|list }} {{ users|rejectattr('age')|map(attribute='name')|list }} {{ users|selectattr('name', 'equalto', 'a')|list|length }} {{ users|selectattr('age', '>', 1)|list|length }}",
      "['b'] ['a'] 1 1" },
    { "{{ xs|select('odd')|list }} {{ xs|reject('odd')|list }} {{ [none, 0, 1, '']|select|list }} {{ xs|select('in', [1, 3])|list }} {{ xs|select('gt', 1)|list }}",
      "[3, 1] [2] [1] [3, 1] [3, 2]" },
    { "{{ [1, 1, 2, 'A', 'a']|unique|list }} {{ ['A', 'a']|unique(case_sensitive=true)|list }} {{ xs|batch(2)|list }} {{ 'abc'|center(7) }}| {{ 'one two  three'|wordcount }}",
      "[1, 2, 'A'] ['A', 'a'] [[3, 1], [2]]   abc  | 3" },
    { "{{ 'hello world foo bar'|truncate(9) }} {{ 'hello world foo bar'|truncate(9, true) }} {{ 'a\\nb\\n\\nc'|indent(2) }} {{ 'a\\nb'|indent(2, true) }} {{ 'a\\n\\nb'|indent('> ', blank=true) }}",
      "hello... hello ... a\n  b\n\n  c   a\n  b a\n> \n> b" },
    { "{{ '%.2f'|format(3.14159) }} {{ '%s-%s'|format('a', 'b') }} {{ users|first|attr('name') }} {{ msgs|selectattr('role', 'equalto', 'nobody') is defined }}",
      "3.14 a-b  True" },
    { "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ [1, 'x']|tojson(separators=(',', ':')) }}|{{ {'a': []}|tojson(indent=1) }}",
      "{\"b\": 1, \"a\": [1, 2, {\"c\": null}]}|{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2,\n    {\n      \"c\": null\n    }\n  ]\n}|{\"a\": 2, \"b\": 1}|[1,\"x\"]|{\n \"a\": []\n}" },
    { "{{ {1: 'a', none: 2, true: 3, 2.5: 4}|tojson }}|{{ 'a\\u2028\"\\\\\\n\\t\\x01'|tojson }}|{{ 1.0|tojson }} {{ 1e20|tojson }} {{ none|tojson }} {{ [true, false]|tojson }}",
      "{\"1\": 3, \"null\": 2, \"2.5\": 4}|\"a\xe2\x80\xa8\\\"\\\\\\n\\t\\u0001\"|1.0 1e+20 null [true, false]" },
};

static const tcase cases_tests[] = {
    { "{{ none is none }} {{ t is true }} {{ t is false }} {{ t is boolean }} {{ n is odd }} {{ n is even }} {{ n is divisibleby 7 }} {{ n is divisibleby(2) }}",
      "True True False True True False True False" },
    { "{{ s is string }} {{ d is mapping }} {{ xs is iterable }} {{ 'x' is iterable }} {{ xs is sequence }} {{ d is sequence }} {{ n is number }} {{ f is float }} {{ n is integer }} {{ t is number }}",
      "True True True True True True True True True True" },
    { "{{ missing is defined }} {{ missing is undefined }} {{ n is defined }} {{ greet is callable }} {{ range is callable }} {{ n is not none }} {{ 'a' is in 'abc' }}",
      "False True True True True True True" },
    { "{{ n is eq 7 }} {{ n is equalto 7 }} {{ n is ne 7 }} {{ n is gt 5 }} {{ n is ge 7 }} {{ n is lt 5 }} {{ n is le 7 }} {{ n is greaterthan 8 }} {{ n is lessthan 8 }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ none is sameas none }}",
      "True True False True True False True False True True True True" },
};

static const tcase cases_whitespace[] = {
    { "a\n  {% if true %}\n    b\n  {% endif %}\nc",
      "a\n    b\nc" },
    { "a\n  {%- if true %}\n    b\n  {% endif -%}\nc",
      "a    b\nc" },
    { "a  {% if true %}b{% endif %}  c\n",
      "a  b  c" },
    { "line1\n\t {% for x in xs %}\n  {{ x }}\n {% endfor %}\nend\n\n",
      "line1\n  3\n  1\n  2\nend\n" },
    { "{# comment #}\nafter\n  {# indented #}\nx {#- strip -#}   y",
      "after\nxy" },
    { "  {%+ if true %}keep{% endif +%}\nnext",
      "  keep\nnext" },
    { "{{- ' a ' -}}  \n  {{ 'b' }}\n  {{- 'c' }}",
      " a bc" },
    { "x\x0d\ny\x0d\n{% if true %}\x0d\nz\x0d\n{% endif %}\x0d\n",
      "x\ny\nz\n" },
    { "{% for x in xs -%}\n  [{{ x }}]\n{%- endfor %}",
      "[3][1][2]" },
    { "   {% raw %}  raw {{ x }}\n  {% endraw %}  done",
      "  raw {{ x }}\n  done" },
    { "  {{ 'vars are not lstripped' }}\n  {% if 1 %}x{% endif %}",
      "  vars are not lstripped\nx" },
    { "{{ {'a': {'b': 1}} }}{{ {'a': 1}['a'] }}",
      "{'a': {'b': 1}}1" },
    { "{%- for m in msgs %}\n{{- m.role }}: {{ m.content }}\n{% endfor %}",
      "system: S\nuser: U\nassistant: A\n" },
};

static const char vars_json[] = "{\"s\": \"  Hello, World  \", \"n\": 7, \"f\": 2.5, \"xs\": [3, 1, 2], \"t\": true, \"e\": \"\", \"u\": \"h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83\", \"d\": {\"b\": 1, \"a\": [1, 2, {\"c\": null}]}, \"users\": [{\"name\": \"b\", \"age\": 2}, {\"name\": \"a\", \"age\": 0}], \"msgs\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"U\"}, {\"role\": \"assistant\", \"content\": \"A\"}]}";
/* ---- helpers ---- */

/* Shows s[from, from+n) with escapes, for failure messages. */
static const char *excerpt(const char *s, size_t len, size_t from, size_t n)
{
    static char buf[4][256];
    static int slot;
    char *b = buf[slot++ % 4];
    size_t o = 0;
    for (size_t i = from; i < len && i < from + n && o + 8 < sizeof buf[0]; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') { b[o++] = '\\'; b[o++] = 'n'; }
        else if (ch < 0x20 || ch == 0x7f) o += (size_t)snprintf(b + o, sizeof buf[0] - o, "\\x%02x", ch);
        else b[o++] = (char)ch;
    }
    b[o] = 0;
    return b;
}

/* Checks got == want byte for byte; on a difference reports the first
 * differing byte with context. */
static void check_same(t_state *t_, const char *what, const char *want, size_t wn, const char *got, size_t gn)
{
    if (wn == gn && !memcmp(want, got, wn)) return;
    size_t i = 0;
    while (i < wn && i < gn && want[i] == got[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    t_failf(t_, __FILE__, __LINE__, "%s: first difference at byte %zu (expected %zu bytes, got %zu)\n"
            "    expected: ...%s\n    got:      ...%s", what, i, wn, gn,
            excerpt(want, wn, from, 100), excerpt(got, gn, from, 100));
}

/* Renders src with vars; returns the text (malloc'd) or NULL with e set. */
static char *render(const char *src, const char *vars, const tmpl_limits *lim, size_t *n, mf_error *e)
{
    tmpl *t = tmpl_parse(src, strlen(src), e);
    if (!t) return NULL;
    char *out;
    int rc = tmpl_render(t, vars, vars ? strlen(vars) : 0, lim, &out, n, e);
    tmpl_free(t);
    return rc ? NULL : out;
}

static void run_cases(t_state *t_, const char *group, const tcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mf_error e;
        size_t len;
        char *out = render(cases[i].tmpl, vars_json, NULL, &len, &e);
        char what[96];
        snprintf(what, sizeof what, "%s[%zu] %.40s", group, i, cases[i].tmpl);
        if (!out) { t_failf(t_, __FILE__, __LINE__, "%s: %s", what, e.msg); continue; }
        check_same(t_, what, cases[i].want, strlen(cases[i].want), out, len);
        free(out);
    }
}

#define RUN(group) run_cases(t_, #group, cases_##group, sizeof cases_##group / sizeof cases_##group[0])

/* ---- the golden chat cases ---- */

#ifdef MF_HAVE_JANSSON
TEST(template_chat_golden)
{
    size_t len;
    char *data = t_read_file(t_shared("golden/tokenizer/chat.jsonl"), &len);
    REQUIRE(data);
    struct { const char *gguf; mf_chat_template *ct; } cache[4] = { { 0 } };
    int cases = 0, passed = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        json_error_t je;
        json_t *c = json_loads(line, 0, &je);
        REQUIREF(c, "chat.jsonl line %d: %s", cases + 1, je.text);
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *gguf = json_string_value(json_object_get(c, "gguf"));
        json_t *want = json_object_get(c, "expected");
        REQUIRE(name && gguf && json_is_string(want));
        int k = 0;
        while (k < 4 && cache[k].gguf && strcmp(cache[k].gguf, gguf)) k++;
        REQUIRE(k < 4);
        if (!cache[k].gguf) {
            mf_error e;
            cache[k].gguf = gguf;
            char path[512];
            snprintf(path, sizeof path, "golden/tokenizer/%s", gguf);
            cache[k].ct = mf_chat_template_from_model(t_shared(path), NULL, &e);
            REQUIREF(cache[k].ct, "%s: %s", gguf, e.msg);
            CHECK(!mf_chat_template_is_fallback(cache[k].ct));
            cache[k].gguf = strdup(gguf);
        }
        char *req = json_dumps(json_object_get(c, "input"), JSON_COMPACT);
        mf_error e;
        char *out;
        size_t n;
        cases++;
        if (mf_chat_template_apply(cache[k].ct, req, &out, &n, &e)) {
            t_failf(t_, __FILE__, __LINE__, "case '%s': %s", name, e.msg);
        } else {
            int before = t_->failures;
            check_same(t_, name, json_string_value(want), json_string_length(want), out, n);
            passed += t_->failures == before;
            free(out);
        }
        free(req);
        json_decref(c);
    }
    for (int k = 0; k < 4; k++) { mf_chat_template_free(cache[k].ct); free((char *)cache[k].gguf); }
    free(data);
    printf("  %d/%d chat cases byte-identical\n", passed, cases);
    CHECK(cases == 40);
}

TEST(template_chat_api)
{
    mf_error e;
    char *out;
    size_t n;
    /* the ChatML fallback, and bos/eos from the request when not given */
    const char *req = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"add_generation_prompt\": true}";
    REQUIRE(mf_chat_render(NULL, req, NULL, NULL, &out, &n, &e) == 0);
    const char *chatml = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
    check_same(t_, "chatml", chatml, strlen(chatml), out, n);
    free(out);
    REQUIRE(mf_chat_render("{{ bos_token }}|{{ eos_token }}|{{ tools }}|{{ add_generation_prompt }}|{{ enable_thinking is defined }}|{{ reasoning_effort }}",
                           "{\"messages\": [], \"bos_token\": \"<s>\", \"reasoning_effort\": \"high\"}", NULL, "</s>", &out, &n, &e) == 0);
    check_same(t_, "variables", "<s>|</s>|None|False|False|high", 30, out, n);
    free(out);
    /* NUL in content survives (length, not C string) */
    REQUIRE(mf_chat_render("{{ messages[0].content }}", "{\"messages\": [{\"content\": \"a\\u0000b\"}]}", NULL, NULL, &out, &n, &e) == 0);
    check_same(t_, "NUL", "a\0b", 3, out, n);
    free(out);
    /* bad requests */
    CHECK(mf_chat_render(NULL, "{\"messages\": ", NULL, NULL, &out, &n, &e) == -1 && strstr(e.msg, "invalid JSON"));
    CHECK(mf_chat_render(NULL, "{\"msgs\": []}", NULL, NULL, &out, &n, &e) == -1 && strstr(e.msg, "\"messages\""));
    CHECK(mf_chat_render(NULL, "[1]", NULL, NULL, &out, &n, &e) == -1 && strstr(e.msg, "JSON object"));
    CHECK(mf_chat_render("{% if %}", "{\"messages\": []}", NULL, NULL, &out, &n, &e) == -1 &&
          strstr(e.msg, "chat template: line 1, column 7"));
    CHECK(out == NULL);

    /* a model file without a template gets ChatML and its bos/eos texts */
    gguf_writer *w = gguf_writer_new();
    const char *toks[] = { "<s>", "</s>", "a" };
    gguf_w_str(w, "general.architecture", "llama");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 0);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 1);
    char path[512];
    snprintf(path, sizeof path, "%s/notemplate.gguf", t_tmpdir());
    REQUIREF(gguf_w_write(w, path, 0, &e) == 0, "%s", e.msg);
    gguf_writer_free(w);
    mf_chat_template *ct = mf_chat_template_from_model(path, NULL, &e);
    REQUIREF(ct, "%s", e.msg);
    CHECK(mf_chat_template_is_fallback(ct));
    REQUIRE(mf_chat_template_apply(ct, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", &out, &n, &e) == 0);
    check_same(t_, "model chatml", "<|im_start|>user\nx<|im_end|>\n", 29, out, n);
    free(out);
    mf_chat_template_free(ct);
    ct = mf_chat_template_from_model(path, "{{ bos_token }}{{ messages|length }}{{ eos_token }}", &e);
    REQUIREF(ct, "%s", e.msg);
    REQUIRE(mf_chat_template_apply(ct, "{\"messages\": []}", &out, &n, &e) == 0);
    check_same(t_, "override", "<s>0</s>", 8, out, n);
    free(out);
    mf_chat_template_free(ct);
    CHECK(!mf_chat_template_from_model("/nonexistent.gguf", NULL, &e) && strstr(e.msg, "nonexistent"));
}
#endif

/* ---- the language ---- */

TEST(template_statements) { RUN(statements); }
TEST(template_expressions) { RUN(expressions); }
TEST(template_string_methods) { RUN(strings); }
TEST(template_filters) { RUN(filters); }
TEST(template_tests) { RUN(tests); }
TEST(template_whitespace) { RUN(whitespace); }

/* ---- errors name the line and column ---- */

TEST(template_errors)
{
    static const struct { const char *tmpl, *vars, *msg; } cases[] = {
        /* syntax */
        { "{% if %}", NULL, "line 1, column 7: expected an expression, found '%}'" },
        { "a\n{% for x in xs %}", NULL, "line 2, column 1: unexpected end of template: this 'for' is not closed with 'endfor'" },
        { "x\n\n   {% endif %}", NULL, "line 3, column 7: unexpected 'endif' with no open block" },
        { "{% for x in xs %}\n{% endif %}", NULL, "line 2, column 4: unexpected 'endif': the 'for' at line 1, column 1 must be closed with 'endfor' first" },
        { "{{ 1 +* 2 }}", NULL, "line 1, column 7: expected an expression, found an operator" },
        { "{{ 'abc }}", NULL, "line 1, column 4: unterminated string literal" },
        { "{{ (1 }}", NULL, "line 1, column 7: unexpected '}', expected ')'" },
        { "{{ x", NULL, "line 1, column 1: unexpected end of template: this '{{' is not closed with '}}'" },
        { "{# never closed", NULL, "line 1, column 1: unexpected end of template: this comment is not closed" },
        { "{% include 'x' %}", NULL, "line 1, column 4: unsupported statement 'include'" },
        { "{% do x %}", NULL, "unsupported statement 'do'" },
        { "{% frobnicate %}", NULL, "line 1, column 4: unknown statement 'frobnicate'" },
        { "{% break %}", NULL, "line 1, column 4: 'break' outside of a for loop" },
        { "{{ 'a' @ 1 }}", NULL, "line 1, column 8: unexpected character '@'" },
        { "{{ '\\xZZ' }}", NULL, "line 1, column 5: invalid \\x, \\u or \\U escape" },
        /* runtime */
        { "{{ x | nofilter }}", NULL, "line 1, column 8: no filter named 'nofilter'" },
        { "{{ 1 is nosuchtest }}", NULL, "line 1, column 9: no test named 'nosuchtest'" },
        { "\n\n  {{- raise_exception('bad input') }}", NULL, "line 3, column 7: raise_exception: bad input" },
        { "{{ x.y }}", NULL, "line 1, column 4: 'x' is undefined" },
        { "a\n  b {{ d.y.z }}", "{\"d\": {}}", "line 2, column 10: 'dict object' has no attribute 'y'" },
        { "{{ 1 / 0 }}", NULL, "line 1, column 6: division by zero" },
        { "{{ 'a' + 1 }}", NULL, "can only concatenate str (not \"int\") to str" },
        { "{{ q | tojson }}", NULL, "Object of type Undefined is not JSON serializable" },
        { "{% set x.y = 1 %}", NULL, "cannot assign attribute on non-namespace object" },
        { "{% for x in 5 %}{% endfor %}", NULL, "line 1, column 13: 'int' object is not iterable" },
        { "{{ none.split(',') }}", NULL, "'None' has no attribute 'split'" },
        { "{{ 'a' < 1 }}", NULL, "'<' not supported between instances of 'str' and 'int'" },
        { "{{ 9223372036854775807 + 1 }}", NULL, "integer overflow" },
        { "{{ 'x'.center(5, 'ab') }}", NULL, "exactly one character" },
        { "{{ x }}", "[1]", "template variables: expected a JSON object" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mf_error e;
        size_t n;
        char *out = render(cases[i].tmpl, cases[i].vars, NULL, &n, &e);
        if (out) { t_failf(t_, __FILE__, __LINE__, "'%s' rendered '%s', expected an error", cases[i].tmpl, out); free(out); continue; }
        CHECKF(strstr(e.msg, cases[i].msg), "'%s':\n    expected: %s\n    got:      %s", cases[i].tmpl, cases[i].msg, e.msg);
    }
}

/* ---- hostile templates fail cleanly and quickly ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void expect_fail(t_state *t_, const char *src, const tmpl_limits *lim, const char *msg)
{
    mf_error e;
    size_t n;
    double t0 = now_s();
    char *out = render(src, "{\"messages\": []}", lim, &n, &e);
    double dt = now_s() - t0;
    if (getenv("MF_TEMPLATE_TIMES")) printf("  %.3fs %.50s\n", dt, src);
    if (out) { t_failf(t_, __FILE__, __LINE__, "'%.60s' rendered %zu bytes, expected '%s'", src, n, msg); free(out); return; }
    CHECKF(strstr(e.msg, msg), "'%.60s': expected '%s', got '%s'", src, msg, e.msg);
    CHECKF(dt < (t_asan() ? 30 : 5), "'%.60s' took %.1fs to fail", src, dt);
}

TEST(template_limits)
{
    tmpl_limits lim;
    tmpl_limits_default(&lim);
    /* the defaults stop these */
    expect_fail(t_, "{% set r = range(1000) %}{% for a in r %}{% for b in r %}{% for c in r %}{% endfor %}{% endfor %}{% endfor %}",
                NULL, "evaluation steps");
    expect_fail(t_, "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", NULL, "nested deeper than 200");
    expect_fail(t_, "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", NULL, "recursion deeper than 200");
    expect_fail(t_, "{{ range(200000)|length }}", NULL, "range too big");
    expect_fail(t_, "{{ 'x' * 1000000000000 }}", NULL, "string repetition larger than");
    expect_fail(t_, "{{ [1] * 1000000000000 }}", NULL, "list repetition too large");
    expect_fail(t_, "{% set ns = namespace(s='xx') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", NULL, "larger than");
    /* and tighter limits stop them sooner */
    lim.max_steps = 100000;
    expect_fail(t_, "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}", &lim, "100000 evaluation steps");
    tmpl_limits_default(&lim);
    lim.max_memory = 8u << 20;
    expect_fail(t_, "{% for i in range(100000) %}{% set x = range(100000) %}{% endfor %}", &lim, "more than 8 MiB");
    expect_fail(t_, "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}", &lim, "more than 8 MiB");
    tmpl_limits_default(&lim);
    lim.max_output = 1000;
    expect_fail(t_, "{% for i in range(1000) %}xx{% endfor %}", &lim, "rendered text larger than 1000 bytes");
    lim.max_output = 1u << 20;
    expect_fail(t_, "{% for i in range(100000) %}{% for j in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endfor %}", &lim,
                "larger than 1048576 bytes");
    lim.max_depth = 5;
    expect_fail(t_, "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", &lim, "nested deeper than 5");

    /* nesting that would overflow a recursive parser */
    size_t big = 20000;
    char *src = malloc(big * 12 + 64);
    REQUIRE(src);
    size_t o = (size_t)sprintf(src, "{{ ");
    for (size_t i = 0; i < big; i++) src[o++] = '(';
    src[o] = 0;
    expect_fail(t_, src, NULL, "nested too deeply");
    o = 0;
    o += (size_t)sprintf(src + o, "{{ ");
    for (size_t i = 0; i < big; i++) o += (size_t)sprintf(src + o, "not ");
    sprintf(src + o, "1 }}");
    expect_fail(t_, src, NULL, "nested too deeply");
    o = (size_t)sprintf(src, "{{ ");
    for (size_t i = 0; i < big; i++) src[o++] = '-';
    sprintf(src + o, "1 }}");
    expect_fail(t_, src, NULL, "nested too deeply");
    o = 0;
    for (size_t i = 0; i < 1000; i++) o += (size_t)sprintf(src + o, "{%% if 1 %%}");
    for (size_t i = 0; i < 1000; i++) o += (size_t)sprintf(src + o, "{%% endif %%}");
    expect_fail(t_, src, NULL, "nested too deeply");
    /* deeply nested input */
    o = (size_t)sprintf(src, "{\"x\": ");
    for (size_t i = 0; i < 1500; i++) src[o++] = '[';
    for (size_t i = 0; i < 1500; i++) src[o++] = ']';
    sprintf(src + o, "}");
    mf_error e;
    size_t n;
    char *out = render("{{ x }}", src, NULL, &n, &e);
    CHECKF(!out && strstr(e.msg, "nested too deeply"), "deep input: %s", out ? "rendered" : e.msg);
    free(out);
    free(src);
}

/* Every prefix of the real templates, and randomly corrupted copies, must
 * parse or fail with a message, and render or fail with a message: no
 * crash, no hang (run under ASan by make asan). */
TEST(template_hostile_input)
{
    static const char *const models[] = { "golden/tokenizer/qwen3-vocab.gguf", "golden/tokenizer/deepseek-v3-vocab.gguf" };
    const char *req = "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"},"
                      " {\"role\": \"assistant\", \"content\": \"<think>r</think>a\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"k\": 1}}}]},"
                      " {\"role\": \"tool\", \"content\": \"t\"}], \"tools\": [{\"type\": \"function\"}], \"add_generation_prompt\": true}";
    tmpl_limits lim;
    tmpl_limits_default(&lim);
    lim.max_steps = 200000;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int parsed = 0, rendered = 0, total = 0;
    for (size_t m = 0; m < 2; m++) {
        mf_error e;
        gguf_file *f = gguf_open(t_shared(models[m]), &e);
        REQUIREF(f, "%s", e.msg);
        const char *src;
        REQUIRE(gguf_get_str(f, "tokenizer.chat_template", &src, &e) == 0);
        size_t len = strlen(src);
        char *buf = malloc(len + 1);
        REQUIRE(buf);
        size_t step = t_asan() ? 7 : 1;
        int corruptions = t_asan() ? 300 : 3000;
        for (size_t cut = 0; cut <= len + (size_t)corruptions; cut += cut < len ? step : 1) {
            size_t n = cut <= len ? cut : len;
            memcpy(buf, src, n);
            if (cut > len) {   /* a few random bytes changed, biased to the template syntax */
                static const char syn[] = "{}%#()[]'\"-+|.~,:=! \n\tif for endfor endif set";
                for (int k = 0; k < 3; k++) {
                    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                    size_t at = (size_t)(rng >> 33) % n;
                    buf[at] = (rng & 1) ? syn[(rng >> 8) % (sizeof syn - 1)] : (char)(rng >> 16);
                }
            }
            buf[n] = 0;
            total++;
            tmpl *t = tmpl_parse(buf, n, &e);
            if (!t) { CHECK(strstr(e.msg, "line ") || strstr(e.msg, "larger")); continue; }
            parsed++;
            char *out;
            size_t on;
            if (tmpl_render(t, req, strlen(req), &lim, &out, &on, &e) == 0) { rendered++; free(out); }
            else CHECK(e.msg[0] != 0);
            tmpl_free(t);
        }
        free(buf);
        gguf_close(f);
    }
    printf("  %d inputs: %d parsed, %d rendered\n", total, parsed, rendered);
    CHECK(parsed > 0 && rendered > 0);
}

/* ---- the command ---- */

/* Runs a shell command; returns its exit status and its stdout in *out. */
static int run_cmd(const char *cmd, char **out, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cmd.out", t_tmpdir());
    char full[4096];
    snprintf(full, sizeof full, "%s > '%s' 2>/dev/null", cmd, path);
    int st = system(full);
    *out = t_read_file(path, n);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(template_cli_render)
{
    const char *bin = getenv("MF_BIN");
    if (!bin || access(bin, X_OK)) { printf("  skipped: MF_BIN not set (make test sets it)\n"); return; }
    char req[512], cmd[2048];
    snprintf(req, sizeof req, "%s/req.json", t_tmpdir());
    FILE *f = fopen(req, "w");
    REQUIRE(f);
    fputs("{\"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}], \"tools\": null,"
          " \"add_generation_prompt\": true, \"enable_thinking\": true}", f);
    fclose(f);
    const char *want = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    const char *model = t_shared("golden/tokenizer/qwen3-vocab.gguf");
    char *out;
    size_t n;
    snprintf(cmd, sizeof cmd, "'%s' render '%s' --chat '%s'", bin, model, req);
    CHECK(run_cmd(cmd, &out, &n) == 0);
    if (out) check_same(t_, "render --chat FILE", want, strlen(want), out, n);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' render '%s' --chat - < '%s'", bin, model, req);
    CHECK(run_cmd(cmd, &out, &n) == 0);
    if (out) check_same(t_, "render --chat -", want, strlen(want), out, n);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' render '%s'", bin, model);
    CHECK(run_cmd(cmd, &out, &n) == 2);
    free(out);
    snprintf(cmd, sizeof cmd, "echo '{\"messages\": 1}' | '%s' render '%s' --chat -", bin, model);
    CHECK(run_cmd(cmd, &out, &n) == 1);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' render /nonexistent.gguf --chat '%s'", bin, req);
    CHECK(run_cmd(cmd, &out, &n) == 1);
    free(out);
}
