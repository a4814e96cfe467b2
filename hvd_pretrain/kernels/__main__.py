import sys

from hvd_pretrain.kernels import main

sys.exit(main())
