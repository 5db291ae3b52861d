/* Bundle integrity: manifest.json against manifest.sha256 (and an optional pinned digest), every model file against
 * the size and sha256 manifest.json records. Files are read into memory once, checked, and the checked bytes are what
 * the backends load, so a file swapped between the check and the load cannot slip through. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "sha256.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

enum { MAX_DIGEST_FILE_BYTES = 4096 };

static const char REEXPORT[] = "re-export the bundle with this edgeskd version (edgeskd export ... --overwrite), "
                               "or write it with `sha256sum manifest.json > manifest.sha256` if you trust it";

edgeskd_status read_regular_file(const char *path, size_t max_bytes, edgeskd_status too_big, uint8_t **out,
                                 size_t *len, char *err, size_t err_size) {
    *out = NULL;
    *len = 0;
    /* O_NOFOLLOW: a bundle file that is a symlink could point anywhere; bundles are written with plain files. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP) {
            set_error(err, err_size, "%s is a symbolic link; expected a regular file inside the bundle folder", path);
            return EDGESKD_ERR_INTEGRITY;
        }
        set_error(err, err_size, "cannot open %s: %s", path, errno == ENOENT ? "no such file" : strerror(errno));
        return EDGESKD_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        set_error(err, err_size, "%s is not a regular file; expected a regular file inside the bundle folder", path);
        return EDGESKD_ERR_INTEGRITY;
    }
    if ((uint64_t)sb.st_size > (uint64_t)max_bytes) {
        close(fd);
        set_error(err, err_size, "%s is %lld bytes, over the limit of %zu bytes", path, (long long)sb.st_size,
                  max_bytes);
        return too_big;
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        set_error(err, err_size, "out of memory reading %s (%zu bytes)", path, size);
        return EDGESKD_ERR_OUT_OF_MEMORY;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    /* one byte more must be end of file: the file did not grow while we read it */
    uint8_t extra;
    ssize_t more = got == size ? read(fd, &extra, 1) : 0;
    close(fd);
    if (got != size || more != 0) {
        free(buf);
        set_error(err, err_size, "%s changed size while being read (expected %zu bytes)", path, size);
        return EDGESKD_ERR_IO;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return EDGESKD_OK;
}

static int is_hex64(const char *s, size_t n) {
    if (n < 64) return 0;
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
    }
    return 1;
}

edgeskd_status check_manifest_digest(const char *bundle_dir, const uint8_t *text, size_t len, const char *pinned,
                                     char *err, size_t err_size) {
    char actual[65];
    sha256_hex(text, len, SHA256_AUTO, actual);
    if (pinned) {
        if (strlen(pinned) != 64 || !is_hex64(pinned, 64)) {
            set_error(err, err_size, "manifest_sha256 \"%.80s\" is not 64 lower-case hex digits", pinned);
            return EDGESKD_ERR_INVALID_ARGUMENT;
        }
        if (strcmp(pinned, actual) != 0) {
            set_error(err, err_size, "%s/manifest.json: sha256 %.16s... differs from the pinned manifest_sha256 "
                      "%.16s...; the bundle is not the one you pinned", bundle_dir, actual, pinned);
            return EDGESKD_ERR_INTEGRITY;
        }
    }
    size_t n = strlen(bundle_dir) + sizeof "/manifest.sha256";
    char *path = malloc(n);
    if (!path) { set_error(err, err_size, "out of memory"); return EDGESKD_ERR_OUT_OF_MEMORY; }
    snprintf(path, n, "%s/manifest.sha256", bundle_dir);
    uint8_t *digest = NULL;
    size_t digest_len = 0;
    edgeskd_status st = read_regular_file(path, MAX_DIGEST_FILE_BYTES, EDGESKD_ERR_INTEGRITY, &digest, &digest_len,
                                          err, err_size);
    if (st == EDGESKD_ERR_IO) {
        set_error(err, err_size, "%s is missing, so manifest.json cannot be checked (bundles exported before "
                  "edgeskd 0.2 have none); %s", path, REEXPORT);
        st = EDGESKD_ERR_INTEGRITY;
    } else if (st == EDGESKD_OK) {
        /* sha256sum format: 64 hex digits, then whitespace and the file name (or nothing) */
        const char *d = (const char *)digest;
        if (!is_hex64(d, digest_len) || (digest_len > 64 && d[64] != ' ' && d[64] != '\n' && d[64] != '\t')) {
            set_error(err, err_size, "%s does not start with 64 lower-case hex digits (sha256sum format); %s", path,
                      REEXPORT);
            st = EDGESKD_ERR_INTEGRITY;
        } else if (memcmp(d, actual, 64) != 0) {
            set_error(err, err_size, "%s/manifest.json: sha256 %.16s..., manifest.sha256 says %.16s...; the manifest "
                      "was changed after export", bundle_dir, actual, d);
            st = EDGESKD_ERR_INTEGRITY;
        }
    }
    free(digest);
    free(path);
    return st;
}

edgeskd_status read_verified(const bundle_file *f, uint8_t **out, size_t *len, char *err, size_t err_size) {
    /* the recorded size bounds the read: a file grown by tampering is refused before any memory is taken */
    if (f->bytes > (uint64_t)SIZE_MAX - 1) {
        set_error(err, err_size, "%s: manifest records %llu bytes, too large for this machine", f->path,
                  (unsigned long long)f->bytes);
        return EDGESKD_ERR_INTEGRITY;
    }
    struct stat sb;
    if (lstat(f->path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size != f->bytes) {
        set_error(err, err_size, "%s: %lld bytes, manifest.json says %llu", f->path, (long long)sb.st_size,
                  (unsigned long long)f->bytes);
        return EDGESKD_ERR_INTEGRITY;
    }
    edgeskd_status st = read_regular_file(f->path, (size_t)f->bytes, EDGESKD_ERR_INTEGRITY, out, len, err, err_size);
    if (st != EDGESKD_OK) return st;
    if ((uint64_t)*len != f->bytes) {
        set_error(err, err_size, "%s: %zu bytes, manifest.json says %llu", f->path, *len, (unsigned long long)f->bytes);
        st = EDGESKD_ERR_INTEGRITY;
    } else {
        char actual[65];
        sha256_hex(*out, *len, SHA256_AUTO, actual);
        if (strcmp(actual, f->sha256) != 0) {
            set_error(err, err_size, "%s: sha256 %.16s..., manifest.json says %.16s...; the file was changed after "
                      "export", f->path, actual, f->sha256);
            st = EDGESKD_ERR_INTEGRITY;
        }
    }
    if (st != EDGESKD_OK) {
        free(*out);
        *out = NULL;
        *len = 0;
    }
    return st;
}
