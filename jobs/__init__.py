"""Time: scheduling, the reminder planner, the outbox dispatcher and board digests.

Built on ``storage``; nothing in ``storage`` imports from here.
"""
