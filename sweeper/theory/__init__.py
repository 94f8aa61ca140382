"""Closed-form predictions used to test the tool and to build studies with a known answer."""
