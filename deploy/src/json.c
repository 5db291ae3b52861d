/* Minimal recursive-descent JSON reader. Written for edgeskd; strict (no comments, no trailing commas). */
#include "json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 64 };

typedef struct parser {
    const char *text;
    size_t len;
    size_t pos;
    char *err;
    size_t err_size;
    int failed;
} parser;

static void fail(parser *p, const char *what) {
    if (!p->failed && p->err && p->err_size > 0) {
        snprintf(p->err, p->err_size, "%s at byte %zu", what, p->pos);
    }
    p->failed = 1;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int peek(const parser *p) { return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1; }

static json_value *new_value(parser *p, json_type type) {
    json_value *v = calloc(1, sizeof *v);
    if (!v) fail(p, "out of memory");
    else v->type = type;
    return v;
}

static int hex4(parser *p, unsigned *out) {
    if (p->len - p->pos < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *dst, unsigned cp) {
    if (cp < 0x80) { dst[0] = (char)cp; return 1; }
    if (cp < 0x800) { dst[0] = (char)(0xC0 | (cp >> 6)); dst[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12)); dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18)); dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string starting at the opening quote; returns a malloc'd NUL-terminated copy. */
static char *parse_string_raw(parser *p) {
    if (peek(p) != '"') { fail(p, "expected '\"'"); return NULL; }
    p->pos++;
    /* The decoded string is never longer than the encoded one. */
    size_t start = p->pos, end = start;
    while (end < p->len && p->text[end] != '"') end += (p->text[end] == '\\') ? 2 : 1;
    if (end >= p->len) { fail(p, "unterminated string"); return NULL; }
    char *out = malloc(end - start + 1);
    if (!out) { fail(p, "out of memory"); return NULL; }
    size_t n = 0;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->text[p->pos++];
        if (c == '"') { out[n] = '\0'; return out; }
        if (c < 0x20) { fail(p, "control character in string"); break; }
        if (c != '\\') { out[n++] = (char)c; continue; }
        if (p->pos >= p->len) { fail(p, "unterminated escape"); break; }
        char e = p->text[p->pos++];
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(p, &cp)) { fail(p, "bad \\u escape"); goto error; }
            if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair: \uD8xx\uDCxx (12 encoded bytes -> 4) */
                if (p->len - p->pos < 6 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
                    fail(p, "unpaired surrogate"); goto error;
                }
                p->pos += 2;
                if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) { fail(p, "bad surrogate pair"); goto error; }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, "unpaired surrogate"); goto error;
            }
            if (cp == 0) { fail(p, "\\u0000 in string"); goto error; }
            n += put_utf8(out + n, cp); /* at most 4 bytes from at least 6 encoded ones */
            break;
        }
        default: fail(p, "bad escape"); goto error;
        }
    }
    if (!p->failed) fail(p, "unterminated string");
error:
    free(out);
    return NULL;
}

static json_value *parse_value(parser *p, int depth);

static int append(parser *p, json_value *v, json_value *item, char *key) {
    json_value **items = realloc(v->items, (v->count + 1) * sizeof *items);
    if (!items) { fail(p, "out of memory"); return 0; }
    v->items = items;
    if (v->type == JSON_OBJECT) {
        char **keys = realloc(v->keys, (v->count + 1) * sizeof *keys);
        if (!keys) { fail(p, "out of memory"); return 0; }
        v->keys = keys;
        v->keys[v->count] = key;
    }
    v->items[v->count++] = item;
    return 1;
}

static json_value *parse_container(parser *p, int depth, json_type type) {
    char close = type == JSON_ARRAY ? ']' : '}';
    json_value *v = new_value(p, type);
    if (!v) return NULL;
    p->pos++; /* '[' or '{' */
    skip_ws(p);
    if (peek(p) == close) { p->pos++; return v; }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (type == JSON_OBJECT) {
            key = parse_string_raw(p);
            if (!key) break;
            skip_ws(p);
            if (peek(p) != ':') { fail(p, "expected ':'"); free(key); break; }
            p->pos++;
        }
        json_value *item = parse_value(p, depth + 1);
        if (!item) { free(key); break; }
        if (!append(p, v, item, key)) { json_free(item); free(key); break; }
        skip_ws(p);
        int c = peek(p);
        if (c == ',') { p->pos++; continue; }
        if (c == close) { p->pos++; return v; }
        fail(p, type == JSON_ARRAY ? "expected ',' or ']'" : "expected ',' or '}'");
        break;
    }
    json_free(v);
    return NULL;
}

static json_value *parse_number(parser *p) {
    size_t start = p->pos;
    if (peek(p) == '-') p->pos++;
    if (peek(p) == '0') p->pos++;
    else if (peek(p) >= '1' && peek(p) <= '9') while (peek(p) >= '0' && peek(p) <= '9') p->pos++;
    else { fail(p, "bad number"); return NULL; }
    if (peek(p) == '.') {
        p->pos++;
        if (!(peek(p) >= '0' && peek(p) <= '9')) { fail(p, "bad number"); return NULL; }
        while (peek(p) >= '0' && peek(p) <= '9') p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-') p->pos++;
        if (!(peek(p) >= '0' && peek(p) <= '9')) { fail(p, "bad number"); return NULL; }
        while (peek(p) >= '0' && peek(p) <= '9') p->pos++;
    }
    char buf[64];
    size_t n = p->pos - start;
    if (n >= sizeof buf) { fail(p, "number too long"); return NULL; }
    memcpy(buf, p->text + start, n);
    buf[n] = '\0';
    json_value *v = new_value(p, JSON_NUMBER);
    if (!v) return NULL;
    errno = 0;
    v->number = strtod(buf, NULL); /* the grammar was checked above; strtod only converts */
    return v;
}

static int match_word(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static json_value *parse_value(parser *p, int depth) {
    if (depth > MAX_DEPTH) { fail(p, "nesting too deep"); return NULL; }
    skip_ws(p);
    int c = peek(p);
    json_value *v;
    switch (c) {
    case '{': return parse_container(p, depth, JSON_OBJECT);
    case '[': return parse_container(p, depth, JSON_ARRAY);
    case '"': {
        char *s = parse_string_raw(p);
        if (!s) return NULL;
        v = new_value(p, JSON_STRING);
        if (!v) { free(s); return NULL; }
        v->string = s;
        return v;
    }
    case 't': case 'f':
        if (!match_word(p, c == 't' ? "true" : "false")) { fail(p, "bad literal"); return NULL; }
        v = new_value(p, JSON_BOOL);
        if (v) v->boolean = c == 't';
        return v;
    case 'n':
        if (!match_word(p, "null")) { fail(p, "bad literal"); return NULL; }
        return new_value(p, JSON_NULL);
    case -1: fail(p, "unexpected end of input"); return NULL;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
        fail(p, "unexpected character");
        return NULL;
    }
}

json_value *json_parse(const char *text, size_t len, char *err, size_t err_size) {
    parser p = {text, len, 0, err, err_size, 0};
    if (!text) { fail(&p, "no text"); return NULL; }
    json_value *v = parse_value(&p, 0);
    if (!v) return NULL;
    skip_ws(&p);
    if (p.pos != p.len) {
        fail(&p, "trailing characters after the document");
        json_free(v);
        return NULL;
    }
    return v;
}

void json_free(json_value *v) {
    if (!v) return;
    for (size_t i = 0; i < v->count; i++) {
        json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    free(v);
}

const json_value *json_get(const json_value *object, const char *key) {
    if (!object || object->type != JSON_OBJECT || !key) return NULL;
    for (size_t i = 0; i < object->count; i++) {
        if (strcmp(object->keys[i], key) == 0) return object->items[i];
    }
    return NULL;
}
