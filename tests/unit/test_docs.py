"""What the documentation tells an operator to run."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tracked_text_files():
    names = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    for name in names.decode().split('\0'):
        path = ROOT / name
        if name and path.is_file() and not path.is_symlink() and path.suffix in ('.md', '.py', '.yml', '.yaml', '.rst', '.txt'):
            yield path


def test_every_snapshot_command_lists_endpointslices():
    # without EndpointSlices a snapshot routes no externalTrafficPolicy: Local service
    found, short = 0, []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(errors='replace').splitlines(), 1):
            for match in re.finditer(r'kubectl get (nodes,services[a-z,]*)', line):
                found += 1
                if 'endpointslices' not in match.group(1).split(','):
                    short.append('%s:%d: %s' % (path.relative_to(ROOT), number, match.group(0)))
    assert found and short == []


def test_every_plugin_documentation_block_is_yaml():
    # a ": " inside a plain scalar breaks a doc fragment for every module that uses it
    import ast
    import yaml

    def blocks(body):
        for node in body:
            if isinstance(node, ast.ClassDef):
                yield from blocks(node.body)
            elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                  and isinstance(node.value.value, str)
                  and any(getattr(t, 'id', None) in ('DOCUMENTATION', 'EXAMPLES', 'RETURN') for t in node.targets)):
                yield node.value.value

    checked = 0
    for path in sorted((ROOT / 'plugins').glob('*/*.py')):
        for text in blocks(ast.parse(path.read_text()).body):
            yaml.safe_load(text)
            checked += 1
    assert checked > 10
