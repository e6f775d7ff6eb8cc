"""The JSON API's handlers: parse, call the flow, render.

What they share lives in web/http.py, the AppKeys they read in web/keys.py.
"""
