from registry.cli import main

if __name__ == "__main__":  # worker processes (serve --workers) import this module again
    main()
