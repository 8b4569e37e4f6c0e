#!/usr/bin/env python
"""Reference INI reader for the differential test of abo-config's `ini` module.

Usage: ini_reference.py FILE...  -> prints one JSON object {FILE: result, ...}

Runs under Python 2.7 and Python 3.

* Under Python 2.7 it is the real thing: `ConfigParser.ConfigParser`, the reader the
  seed used, with no adjustment at all.  Files are opened in universal-newline mode
  ('rU'), as the Rust reader splits lines like Python's universal newlines.
* Under Python 3 it is `configparser.ConfigParser`, configured to behave like py2 as
  closely as possible.  Each adjustment is small and marked "PY2 RULE" below; what
  cannot be adjusted is listed as a known difference in tests/ini_differential.rs.

Result of one file:
  {"error": null
           | {"kind": "MissingSectionHeaderError", "line": N}
           | {"kind": "ParsingError", "lines": [N, ...]},
   "defaults": [[key, raw], ...],
   "default_values": {key: {"ok": str} | {"err": kind}},
   "sections": [{"name": str,
                 "own": [[key, raw], ...],          # own options, file order
                 "options": [key, ...],             # parser.options(section)
                 "values": {key: {"ok": str} | {"err": kind}}}, ...]}
"""

import json
import re
import sys

PY2 = sys.version_info[0] == 2

# Python 2's str (bytes) whitespace: what `str.strip()`, `str.isspace()` and the
# regex `\s` meant in py2.  Python 3's str methods also know Unicode whitespace.
PY2_SPACE = ' \t\n\r\x0b\x0c'


def text(s):
    """A py2 byte string (UTF-8 in the corpus) as text for JSON."""
    if PY2 and isinstance(s, str):
        return s.decode('utf-8', 'replace')
    return s


def make_parser():
    if PY2:
        import ConfigParser
        return ConfigParser.ConfigParser()

    import configparser
    parser = configparser.ConfigParser(
        # py2 merges repeated sections and lets the last repeated option win.
        strict=False,
        # PY2 RULE: py2 skips blank lines without ending the value; py3 can only keep
        # them (True) or end the value on them (False).  Keep them, drop them in
        # `py2_value` below.
        empty_lines_in_values=True,
        # PY2 RULE: comments are blanked out by `py2_blank_comments`, because py3 would
        # also take indented `#`/`;` lines as comments where py2 reads them as
        # continuation text.
        comment_prefixes=(),
        # PY2 RULE: the inline `;` comment is handled by `py2_value`: py2 looks at the
        # first `;` of the first value line only, py3 at every prefix on every line.
        inline_comment_prefixes=(),
        default_section='DEFAULT',
        interpolation=configparser.BasicInterpolation(),
    )
    # PY2 RULE: py2 lowercased option names with bytes `lower()`, ASCII only.
    parser.optionxform = ascii_lower
    # PY2 RULE: py2's section header regex stops at the first `]` (py3's takes the last).
    parser.SECTCRE = re.compile(r'\[(?P<header>[^]]+)\]')
    return parser


_ASCII_LOWER = dict((ord(c), ord(c) + 32) for c in 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')


def ascii_lower(s):
    return s.translate(_ASCII_LOWER)


def py2_blank_comments(content):
    """PY2 RULE: py2 comment lines are those whose first character is `#` or `;`, or
    whose first word is `rem` (any case) with no leading whitespace.  They become blank
    lines, so that line numbers are kept."""
    lines = content.split('\n')
    out = []
    for line in lines:
        words = line.split()
        if line[:1] in ('#', ';') or (line[:1] in ('r', 'R') and words and words[0].lower() == 'rem'):
            out.append('')
        else:
            out.append(line)
    return '\n'.join(out)


def py2_value(value):
    """PY2 RULE: a py3 raw value turned into what py2 would have stored.

    - the first line loses an inline comment: py2 cuts at the FIRST `;` if the character
      before it is whitespace (py2 quirk not reproduced: a `;` at the very start of the
      value looks at the value's last character, whose trailing whitespace py3 already
      stripped);
    - a first line that is exactly `""` means the empty string;
    - blank continuation lines are dropped (py2 never stored them).
    """
    lines = value.split('\n')
    first = lines[0]
    pos = first.find(';')
    if pos > 0 and first[pos - 1] in PY2_SPACE:
        first = first[:pos]
    first = first.strip(PY2_SPACE)
    if first == '""':
        first = ''
    return '\n'.join([first] + [line for line in lines[1:] if line])


def read(parser, path):
    """Reads `path` into `parser`; returns the error dict or None."""
    if PY2:
        import ConfigParser
        fp = open(path, 'rU')
        try:
            parser.readfp(fp, path)
        except ConfigParser.MissingSectionHeaderError as e:
            return {'kind': 'MissingSectionHeaderError', 'line': e.lineno}
        except ConfigParser.ParsingError as e:
            # py2 raises before joining multi-line values; join them as it would have,
            # so that values can still be compared.
            for options in [parser._defaults] + list(parser._sections.values()):
                for name, val in list(options.items()):
                    if isinstance(val, list):
                        options[name] = '\n'.join(val)
            return {'kind': 'ParsingError', 'lines': [n for n, _ in e.errors]}
        finally:
            fp.close()
        return None

    import configparser
    with open(path, encoding='utf-8', newline=None) as fp:
        content = py2_blank_comments(fp.read())
    error = None
    try:
        parser.read_string(content, path)
    except configparser.MissingSectionHeaderError as e:
        return {'kind': 'MissingSectionHeaderError', 'line': e.lineno}
    except configparser.ParsingError as e:
        # py3 has joined the values already; the parsed options are still there.
        error = {'kind': 'ParsingError', 'lines': [n for n, _ in e.errors]}
    for options in [parser._defaults] + list(parser._sections.values()):
        for name, val in list(options.items()):
            if isinstance(val, str):
                options[name] = py2_value(val)
    return error


def get(parser, section, key):
    try:
        if not PY2:
            raw = parser.get(section, key, raw=True)
            # PY2 RULE: py2 applies `%` formatting only to values containing `%(`;
            # any other value (`100%`, `50%%`) is returned as written.
            if '%(' not in raw:
                return {'ok': raw}
        return {'ok': text(parser.get(section, key))}
    except Exception as e:  # every error kind counts as "an error"
        return {'err': type(e).__name__}


def own_options(options):
    return [[text(k), text(v)] for k, v in options.items() if k != '__name__']


def dump(path):
    parser = make_parser()
    error = read(parser, path)
    result = {'error': error, 'defaults': [], 'default_values': {}, 'sections': []}
    if error is not None and error['kind'] == 'MissingSectionHeaderError':
        return result
    result['defaults'] = own_options(parser._defaults)
    for key in parser._defaults:
        result['default_values'][text(key)] = get(parser, 'DEFAULT', key)
    for name in parser.sections():
        options = parser.options(name)
        result['sections'].append({
            'name': text(name),
            'own': own_options(parser._sections[name]),
            'options': [text(k) for k in options],
            'values': dict((text(k), get(parser, name, k)) for k in options),
        })
    return result


def main(paths):
    out = {}
    for path in paths:
        out[path] = dump(path)
    sys.stdout.write(json.dumps(out, sort_keys=True))
    sys.stdout.write('\n')


if __name__ == '__main__':
    main(sys.argv[1:])
