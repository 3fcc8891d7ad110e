"""``python -m services.ops`` is the ``polyband`` console."""
from services.ops.cli import main

main()
