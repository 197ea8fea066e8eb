from napari_unet.cli import main

raise SystemExit(main())
