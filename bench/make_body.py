"""Writes a complete sipas-individual response (every question answered) as JSON, from the
definition the running server publishes. Usage: make_body.py BASE_URL CAMPAIGN AGENCY > body.json"""
import json
import sys
import urllib.request

base, campaign, agency = sys.argv[1:4]
with urllib.request.urlopen(f"{base}/api/v1/surveys/sipas-individual") as response:
    definition = json.load(response)
answers = {}
for index, question in enumerate(definition["questions"]):
    kind = question["kind"]
    if kind == "scale":
        answers[question["id"]] = question["min"] + (index * 7) % (question["max"] - question["min"] + 1)
    elif kind == "single_choice":
        answers[question["id"]] = question["options"][index % len(question["options"])]["value"]
    elif kind == "multi_choice":
        answers[question["id"]] = [question["options"][0]["value"]]
    elif kind == "text":
        answers[question["id"]] = "Cán bộ tiếp nhận hồ sơ nhiệt tình, hướng dẫn rõ ràng."
print(json.dumps({"campaign": campaign, "agency": agency, "respondent_type": "individual", "language": "vi", "answers": answers}, ensure_ascii=False))
