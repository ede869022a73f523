import pandas as pd

from pages._charts import f1_heatmap


def test_heatmap_marks_in_domain_and_shows_recall_for_one_class_corpora():
    metrics = pd.DataFrame([
        dict(training_set="zero-shot", corpus="A", in_domain=False, f1=0.5, recall=1.0, precision=0.5, accuracy=0.5, n=10),
        dict(training_set="specialist-A", corpus="A", in_domain=True, f1=0.9, recall=0.9, precision=0.9, accuracy=0.9, n=10,
             cut_share=0.7, median_cut_tokens=212.0),
        dict(training_set="specialist-A", corpus="N", in_domain=False, f1=None, recall=0.4, precision=None, accuracy=0.4, n=10),
    ])
    corpora = pd.DataFrame([dict(name="A", label_meaning="spam", synthetic=False),
                            dict(name="N", label_meaning="phishing", synthetic=True)])
    fig = f1_heatmap(metrics, corpora)
    heat = fig.data[0]
    assert list(fig.layout.yaxis.ticktext) == ["zero-shot", "specialist-A"]
    assert heat.text[1][0] == "0.90 ◆" and heat.text[1][1] == "R 0.40"
    assert heat.text[0][1] == ""  # no predictions
    assert heat.hovertext[1][0].endswith("<br>token budget cut 70% of these emails (a median of 212 tokens each)")
    assert "token budget" not in heat.hovertext[0][0] and "token budget" not in heat.hovertext[1][1]  # unknown: silent
    assert len(fig.layout.shapes) == 1
    assert "synthetic" in fig.layout.xaxis.ticktext[1] and "phishing" in fig.layout.xaxis.ticktext[1]
