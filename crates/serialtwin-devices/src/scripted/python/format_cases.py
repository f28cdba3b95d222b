"""Generates format_cases.rs: Python's own answers for the Rust port of `str.format`.

The Rust unit tests of format.rs check every case of the generated table with no Python at
test time. Regenerate with the Python whose behaviour is served (pyvisa-sim runs on 3.11):

    target/pyenv-pyvisa-sim/bin/python \
        crates/serialtwin-devices/src/scripted/python/format_cases.py \
        > crates/serialtwin-devices/src/scripted/python/format_cases.rs
    rustfmt --edition 2024 crates/serialtwin-devices/src/scripted/python/format_cases.rs

Three tables:
- CASES: (format string, value, Ok(result) or Err(message)) over type letters, precisions,
  signs, `z`, `#`, `0`, widths, fills, alignments and groupings, for ints, floats and strs;
  deterministic (a fixed seed picks a sample of the flag combinations).
- REPRS: (bits of a double, repr) for exact integers, powers of ten, subnormals and
  random doubles.
- PARSE_ERRORS: format strings Python rejects whatever the value, with the message the port
  gives at parse time (the same as Python's for every value's type).

A Python message "Invalid format specifier 'X' for object of type 'T'" is cut before " for
object of type": the port reports it at parse time, before the value's type is known.
"""

import itertools
import math
import random
import struct
import sys

assert sys.version_info[:2] == (3, 11), sys.version

INVALID = "Invalid format specifier '"


def rust_str(s):
    out = ['"']
    for c in s:
        if c == '\\':
            out.append('\\\\')
        elif c == '"':
            out.append('\\"')
        elif 0x20 <= ord(c) < 0x7f:
            out.append(c)
        else:
            out.append('\\u{%x}' % ord(c))
    out.append('"')
    return ''.join(out)


def bits(x):
    return struct.unpack('<Q', struct.pack('<d', x))[0]


def rust_value(v):
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, int):
        return 'V::I(%d)' % v
    if isinstance(v, float):
        return 'V::F(0x%016x)' % bits(v)
    return 'V::S(%s)' % rust_str(v)


def message(e):
    text = str(e)
    if text.startswith(INVALID):
        text = text[:text.index(" for object of type '")]
    return text


def outcome(fmt, v):
    try:
        return 'Ok(%s)' % rust_str(fmt.format(v))
    except (ValueError, IndexError, KeyError, OverflowError) as e:
        return 'Err(%s)' % rust_str(message(e))


VALUES = [
    0, 5, -5, 65, 255, -255, 1234, 1234567, -1234567, 2**70, 0x110000, -1,
    0.0, -0.0, 5.0, -5.0, 1234.5, -1234.5, 0.5, 1.5, 2.5, -2.5, 1.005, 0.125, 9.995, 123.456, -0.001,
    1e-5, 1e16, 1e22, 1.5e300, 5e-324, 1234567.0, 0.1, float('inf'), float('-inf'),
    float('nan'), 'P6V', '', 'ab',
]
TYPES = ['', 'b', 'c', 'd', 'o', 'x', 'X', 'n', 'e', 'E', 'f', 'F', 'g', 'G', '%', 's']
PRECISIONS = ['', '.0', '.1', '.2', '.3', '.8', '.12']
ALIGNS = ['', '<', '>', '^', '=', '*<', '*>', '*^', '*=', '0>', 'x=', '\0>']
SIGNS = ['', '+', '-', ' ']
ZS = ['', 'z']
ALTS = ['', '#']
ZEROS = ['', '0']
WIDTHS = ['', '1', '8', '12', '20']
GROUPS = ['', ',', '_']

FIXED = [
    '{:.2f}', '{:+.8E}', '{:d}', '{:s}', '{:.3f}', '{}', 'V={0:>8.3f} V', '{{}}{}',
    '{0}{0}', '{!s}', '{!s:>6}', '{0!s:^7}', 'text only', '', '{{{0}}}', 'a}}b{{c',
    '{:}', '{0:}', '{!s:}', '{:05}', '{:09,}', '{:08,.2f}', '{:#010x}', '{:020_b}',
    '{:0=12,}', '{:04,}', '{:012,.3f}', '{:z.1f}', '{:.0%}', '{:#.0e}', '{:#}', '{:#g}',
]


def cases():
    out = []
    for fmt in FIXED:
        for v in VALUES:
            out.append((fmt, v))
    for ty, prec in itertools.product(TYPES, PRECISIONS):
        for v in VALUES:
            out.append(('{:%s%s}' % (prec, ty), v))
    rng = random.Random(20261203)
    combos = list(itertools.product(ALIGNS, SIGNS, ZS, ALTS, ZEROS, WIDTHS, GROUPS,
                                    PRECISIONS, TYPES))
    for combo in rng.sample(combos, 1200):
        spec = ''.join(combo)
        for v in rng.sample(VALUES, 3):
            out.append(('{:%s}' % spec, v))
    seen = set()
    unique = []
    for fmt, v in out:
        key = (fmt, repr(v), type(v))
        if key not in seen:
            seen.add(key)
            unique.append((fmt, v))
    return unique


def reprs():
    values = [0.0, -0.0, 1.0, 5.0, 0.1, 0.2, 0.3, 1 / 3, 2 / 3, 1e-4, 1e-5, 9.999e-5,
              1e15, 1e16, 1e17, 123456789012345.0, 1234567890123456.0, 12345678901234567.0,
              2.0**53, 2.0**53 + 2, 2.0**63, 2.0**64, 2e16 + 8, 5e-324, 2.2250738585072014e-308,
              2.225073858507201e-308, 1.7976931348623157e308, float('inf'), float('-inf'),
              float('nan'), 1.005, 9.995, 0.5, 1.5e300, 1e22, 1e23, 4.35, 0.0001, 0.00011]
    rng = random.Random(3)
    for _ in range(150):
        values.append(struct.unpack('<d', struct.pack('<Q', rng.getrandbits(64)))[0])
    for _ in range(60):
        values.append(float(rng.randrange(-2**60, 2**60)))
    for _ in range(40):
        values.append(float(rng.randrange(0, 10**6)) / 10**rng.randrange(0, 9))
    for _ in range(30):
        values.append(rng.getrandbits(52) * 5e-324)
    for e in range(-8, 24):
        values.append(10.0**e)
        values.append(-1.5 * 10.0**e)
    out = []
    for x in values:
        if math.isnan(x):
            x = float('nan')
        out.append((bits(x), repr(x)))
    return out


PARSE_ERRORS = [
    '{1}', '{}{}', '{0}{1}', '{name}', '{0x}', '{ }', '{-1}', "{'}", '{"}', '{a.x}',
    '{1.x}', '{99999999999999999999}', '}', '{', 'a}b', 'a{b', '{0', '{:', '{!', '{!s',
    '{!}', '{!sx}', '{!x}', '{!}}', '{a{b}c}', '{0[}', '{:{}', '{0:}}', '{}{0}',
    '{0}{}', '{:ss}', '{:>5ss}', '{:.}', '{:5.}', '{:,_}', '{:_,}', '{:,x}', '{:,s}',
    '{:_s}', '{:_n}', '{:,n}', '{:,c}', '{:,\u00e9}', '{:9999999999999999999}',
    '{:.9999999999999999999f}', 'x{}y}', '{:fx}',
]


def parse_errors():
    out = []
    for fmt in PARSE_ERRORS:
        messages = set()
        for v in (5, 5.0, 'ab'):
            try:
                fmt.format(v)
                messages.add(None)
            except (ValueError, IndexError, KeyError) as e:
                messages.add(message(e))
        assert len(messages) == 1 and None not in messages, (fmt, messages)
        out.append((fmt, messages.pop()))
    return out


def main():
    print('// @generated by format_cases.py (%s): do not edit.' % sys.version.split()[0])
    print()
    print('/// (format string, value, what Python 3.11 gives).')
    print('pub(super) const CASES: &[(&str, V, Result<&str, &str>)] = &[')
    for fmt, v in cases():
        print('    (%s, %s, %s),' % (rust_str(fmt), rust_value(v), outcome(fmt, v)))
    print('];')
    print()
    print("/// (a double's bits, Python's repr of it).")
    print('pub(super) const REPRS: &[(u64, &str)] = &[')
    for b, r in reprs():
        print('    (0x%016x, %s),' % (b, rust_str(r)))
    print('];')
    print()
    print('/// (format string, the error Python raises for an int, a float and a str alike).')
    print('pub(super) const PARSE_ERRORS: &[(&str, &str)] = &[')
    for fmt, m in parse_errors():
        print('    (%s, %s),' % (rust_str(fmt), rust_str(m)))
    print('];')


if __name__ == '__main__':
    main()
