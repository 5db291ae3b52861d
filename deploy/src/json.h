/* A minimal JSON reader (RFC 8259 subset large enough for manifest.json): parses a whole document into a tree. */
#ifndef EDGESKD_JSON_H
#define EDGESKD_JSON_H

#include <stddef.h>

typedef enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    int boolean;
    double number;
    char *string;          /* JSON_STRING: NUL-terminated UTF-8 (embedded NULs are rejected) */
    size_t count;          /* JSON_ARRAY / JSON_OBJECT: number of items */
    json_value **items;    /* JSON_ARRAY / JSON_OBJECT: the items */
    char **keys;           /* JSON_OBJECT: items[i]'s key */
};

/* Parse `text` (length `len`, need not be NUL-terminated). On failure returns NULL and writes a message with the
 * byte offset into err. */
json_value *json_parse(const char *text, size_t len, char *err, size_t err_size);

void json_free(json_value *value);

/* Member `key` of an object, or NULL (also when `object` is NULL or not an object). */
const json_value *json_get(const json_value *object, const char *key);

#endif
