"""The HTTP service: routes for a lender's systems and the operator's page."""
