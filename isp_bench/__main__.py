"""``python -m isp_bench ARGS`` is ``isp-bench ARGS``, and torchrun's target:
``torchrun --nproc_per_node N -m isp_bench run ...``."""

import sys

from isp_bench.cli import main

sys.exit(main())
