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
