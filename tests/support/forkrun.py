"""Run many lumos command lines quickly: import every tool once, then fork a child per
command line that runs cli.main exactly as the `lumos` entry point does (stdin closed,
stdout and stderr to files). Prints one JSON line per command: argv, exit code, stderr.

    python forkrun.py < argvs.json    (a JSON list of argv lists)
"""

import json
import os
import sys
import tempfile

from lumos.cli import build_parser, main

build_parser()  # imports every tool module before the first fork

for argv in json.load(sys.stdin):
    with tempfile.TemporaryFile() as err, open(os.devnull, "w") as null:
        pid = os.fork()
        if pid == 0:
            os.dup2(null.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 2
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code or 0)
        _, status = os.waitpid(pid, 0)
        err.seek(0)
        print(json.dumps({"argv": argv, "rc": os.waitstatus_to_exitcode(status),
                          "stderr": err.read().decode(errors="replace")}), flush=True)
