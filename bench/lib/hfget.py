"""One hf_hub_download in a fresh process: prints {"seconds", "size", "path"} as JSON.

Usage: python hfget.py REPO FILENAME   (HF_ENDPOINT, HF_HOME, HF_HUB_DISABLE_XET set by the caller)
The import of huggingface_hub is not timed; the call to hf_hub_download is.
"""

import json
import os
import sys
import time

from huggingface_hub import hf_hub_download


def main() -> None:
    repo, filename = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    path = hf_hub_download(repo, filename)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "size": os.path.getsize(path), "path": path}))


if __name__ == "__main__":
    main()
