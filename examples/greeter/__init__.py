"""The greeter example: counts visits per user, asks a formatter for a greeting
(a reply between functions), schedules a reminder (a delayed message) and writes
greetings to a Kafka egress. Every web-framework example hosts these functions.
"""
