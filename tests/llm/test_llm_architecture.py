"""The engine, the synthesis tasks and ``syntriever synthesize`` start without any deep-learning framework."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

HEAVY = ("torch", "transformers", "sentence_transformers")


def test_llm_synthesis_and_the_synthesize_command_do_not_import_torch() -> None:
    script = (
        "import json, sys\n"
        "import syntriever_hf.llm, syntriever_hf.llm.batch, syntriever_hf.synthesis, syntriever_hf.cli.synthesize\n"
        "import syntriever_hf.data, syntriever_hf.hub.cards, syntriever_hf.hub.push  # used lazily by synthesize\n"
        "from syntriever_hf.cli.main import build_parser\n"
        "build_parser().parse_args(['synthesize', '--data', 'x', '--model', 'm', '--output', 'o'])\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
        "print(json.dumps('syntriever_hf.llm.engine' in sys.modules and 'datasets' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy, imported = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert imported is True  # the modules under test really were imported
    assert heavy == []
