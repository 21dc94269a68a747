"""``python -m minc_lightning fit ...``: the ``minc-lightning`` command, for launchers that start a
module (``torchrun -m``) rather than a console script."""

from minc_lightning.commands.fit import main

if __name__ == "__main__":
    main()
