import sys

from ernie.pretrain.trainer import main

sys.exit(main())
