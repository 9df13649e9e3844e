// The printf formatter, shared by the kernel and the user library (see
// format.h). It writes through a put function, so the same code fills a
// buffer (vsnprintf, pure and unit-tested in the kernel) and streams to the
// kernel console (kprintf: no length limit, no buffer on a panic's stack).
#include <stdbool.h>
#include <stdint.h>
#include "format.h"
#include "string.h"

struct sink {
    void (*put)(char c, void *arg);
    void *arg;
    size_t len;         // characters produced so far
};

static void emit(struct sink *s, char c)
{
    s->put(c, s->arg);
    s->len++;
}

static void emit_pad(struct sink *s, char c, int n)
{
    while (n-- > 0)
        emit(s, c);
}

struct spec {
    bool left;          // '-'
    bool zero;          // '0'
    int width;
    int precision;      // -1: none
};

// Emit a finished field (sign/prefix already in `prefix`) with padding.
static void emit_field(struct sink *s, const struct spec *sp, const char *prefix,
                       const char *body, int body_len)
{
    int plen = (int)strlen(prefix);
    int pad = sp->width - plen - body_len;
    if (!sp->left && !sp->zero)
        emit_pad(s, ' ', pad);
    for (int i = 0; i < plen; i++)
        emit(s, prefix[i]);
    if (!sp->left && sp->zero)
        emit_pad(s, '0', pad);      // zeros go between the sign and digits
    for (int i = 0; i < body_len; i++)
        emit(s, body[i]);
    if (sp->left)
        emit_pad(s, ' ', pad);
}

static void emit_number(struct sink *s, const struct spec *sp, uint64_t v,
                        bool negative, int base, bool upper, const char *prefix)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = sizeof(tmp);
    do {
        tmp[--n] = digits[v % base];
        v /= base;
    } while (v);
    emit_field(s, sp, negative ? "-" : prefix, tmp + n, (int)sizeof(tmp) - n);
}

enum length { LEN_INT, LEN_CHAR, LEN_SHORT, LEN_LONG, LEN_LLONG, LEN_SIZE };

static uint64_t fetch_unsigned(va_list *ap, enum length len)
{
    switch (len) {
    case LEN_CHAR:  return (unsigned char)va_arg(*ap, unsigned int);
    case LEN_SHORT: return (unsigned short)va_arg(*ap, unsigned int);
    case LEN_LONG:  return va_arg(*ap, unsigned long);
    case LEN_LLONG: return va_arg(*ap, unsigned long long);
    case LEN_SIZE:  return va_arg(*ap, size_t);
    default:        return va_arg(*ap, unsigned int);
    }
}

static int64_t fetch_signed(va_list *ap, enum length len)
{
    switch (len) {
    case LEN_CHAR:  return (signed char)va_arg(*ap, int);
    case LEN_SHORT: return (short)va_arg(*ap, int);
    case LEN_LONG:  return va_arg(*ap, long);
    case LEN_LLONG: return va_arg(*ap, long long);
    case LEN_SIZE:  return (int64_t)va_arg(*ap, size_t);
    default:        return va_arg(*ap, int);
    }
}

// Parse flags, width, precision and length after a '%'; returns the
// position of the conversion character.
static const char *parse_spec(const char *p, struct spec *sp, enum length *len, va_list *ap)
{
    *sp = (struct spec){ .precision = -1 };
    for (;; p++) {
        if (*p == '-')
            sp->left = true;
        else if (*p == '0')
            sp->zero = true;
        else
            break;
    }
    if (*p == '*') {
        sp->width = va_arg(*ap, int);
        if (sp->width < 0) {
            sp->left = true;
            sp->width = -sp->width;
        }
        p++;
    }
    while (*p >= '0' && *p <= '9')
        sp->width = sp->width * 10 + (*p++ - '0');
    if (*p == '.') {
        p++;
        sp->precision = 0;
        if (*p == '*') {
            sp->precision = va_arg(*ap, int);
            p++;
        }
        while (*p >= '0' && *p <= '9')
            sp->precision = sp->precision * 10 + (*p++ - '0');
    }
    *len = LEN_INT;
    if (*p == 'h') {
        *len = p[1] == 'h' ? LEN_CHAR : LEN_SHORT;
        p += p[1] == 'h' ? 2 : 1;
    } else if (*p == 'l') {
        *len = p[1] == 'l' ? LEN_LLONG : LEN_LONG;
        p += p[1] == 'l' ? 2 : 1;
    } else if (*p == 'z') {
        *len = LEN_SIZE;
        p++;
    }
    return p;
}

int vformat(void (*put)(char c, void *arg), void *arg, const char *fmt, va_list ap_in)
{
    struct sink sink = { .put = put, .arg = arg }, *s = &sink;
    va_list ap;
    va_copy(ap, ap_in);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            emit(s, *p);
            continue;
        }
        const char *start = p;
        struct spec sp;
        enum length len;
        p = parse_spec(p + 1, &sp, &len, &ap);
        switch (*p) {
        case 'd':
        case 'i': {
            int64_t v = fetch_signed(&ap, len);
            uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
            emit_number(s, &sp, mag, v < 0, 10, false, "");
            break;
        }
        case 'u':
            emit_number(s, &sp, fetch_unsigned(&ap, len), false, 10, false, "");
            break;
        case 'x':
        case 'X':
            emit_number(s, &sp, fetch_unsigned(&ap, len), false, 16, *p == 'X', "");
            break;
        case 'p': {
            struct spec ps = { .zero = true, .width = 18, .precision = -1 };
            emit_number(s, &ps, (uint64_t)va_arg(ap, void *), false, 16, false, "0x");
            break;
        }
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            size_t n = sp.precision >= 0 ? strnlen(str, sp.precision) : strlen(str);
            sp.zero = false;
            emit_field(s, &sp, "", str, (int)n);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            sp.zero = false;
            emit_field(s, &sp, "", &c, 1);
            break;
        }
        case '%':
            emit(s, '%');
            break;
        default:
            // Unknown conversion (or a lone '%' at the end): print it as
            // written, so the mistake is visible rather than silent.
            for (const char *q = start; q <= p && *q; q++)
                emit(s, *q);
            if (!*p)
                p--;
            break;
        }
    }
    va_end(ap);
    return (int)s->len;
}

struct buffer {
    char *buf;
    size_t size;
    size_t len;
};

static void put_buffer(char c, void *arg)
{
    struct buffer *b = arg;
    if (b->len + 1 < b->size)
        b->buf[b->len] = c;
    b->len++;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct buffer b = { .buf = buf, .size = size };
    int n = vformat(put_buffer, &b, fmt, ap);
    if (size)
        buf[b.len < size ? b.len : size - 1] = '\0';
    return n;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
