"""python3 -m chaos.tests: the checker's unit tests, closing with 'N passed, N failed'."""

import os
import sys
import unittest

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
suite = unittest.defaultTestLoader.discover(os.path.join(root, "chaos", "tests"), top_level_dir=root)
result = unittest.TextTestRunner(verbosity=int(os.environ.get("VERBOSE", "1"))).run(suite)
failed = len(result.failures) + len(result.errors)
print(f"chaos-checker: {result.testsRun - failed} passed, {failed} failed")
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
