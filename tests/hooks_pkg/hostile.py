"""A corpus of hostile values for the "values are data, never code" tests."""

from __future__ import annotations

from pathlib import Path


def hostile(marker: Path) -> list[str]:
    """Values that would rewrite a body spliced as text (each one creates ``marker``)."""
    m = str(marker)
    return [
        f'x"; open("{m}", "w").write("1"); y="',
        f"x'; open('{m}', 'w').write('1'); y='",
        f"\\'; open('{m}', 'w').write('1'); y='\\",
        f'\\"; open("{m}", "w").write("1"); y="\\',
        f"'''; open('{m}', 'w').write('1'); '''",
        f'"""; open("{m}", "w").write("1"); """',
        f"x\nopen('{m}', 'w').write('1')\n",
        f"{{open('{m}', 'w').write('1')}}",
        f"{{__import__('os').system('touch {m}')}}",
        f'x"; touch {m}; echo "',
        f"x'; touch {m}; echo '",
        f"$(touch {m})",
        f"`touch {m}`",
        f"; touch {m}",
        f"| touch {m}",
        f"&& touch {m}",
        f"a\ntouch {m}\n",
        f"EOF\ntouch {m}\nEOF",
        f"a[$(touch {m})]",
        "${{ params.other }}",
        "$$ $HOME ${HOME} $(echo) %s {} {0}",
        "* ? [a] ~ ! # -n -e --",
        "\\ \\\\ \\n \\t \\' \\\"",
        "  leading and trailing spaces  ",
        "tab\there\r\nand crlf",
        "non-ASCII: é ñ ü ß 日本語 🚀",
        "",
        "x" * 20_000 + f"'; open('{m}', 'w').write('1'); '",
    ]


INJECT_CONF = """
inject:
  type: Pipeline
  params: {name: str}
  jobs:
    j:
      stages:
        - name: sh
          id: sh
          bash: echo "hello ${{ params.name }}"
        - name: py
          id: py
          run: msg = "hello ${{ params.name }}"
"""
"""The issue's own example: a value spliced into a bash and a run body would rewrite them."""
