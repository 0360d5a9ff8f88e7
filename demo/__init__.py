"""genzoo's Gradio demo (``genzoo demo`` or ``python demo/app.py``); see demo/app.py."""
