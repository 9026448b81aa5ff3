"""Model parts shared by offline training and online serving.

Everything here is pure: numpy, torch and FAISS objects in memory. No web framework, no Redis, no
file formats — the training side and the service import the *same* code, so a score computed
offline is the score the API returns.

Reading order, one stage per module (a list for a request flows top to bottom):

* ``types.py``: ``Recommendations`` (what every strategy returns), ``Candidates``, ``Queries``;
* ``queries.py``: ``QueryBuilder``, a known user's rows or a user built from items;
* ``candidates.py``: ``CandidateRetriever``, filtered FAISS search (``retrieval.py`` wraps FAISS);
* ``ranking.py``: the ranking stage, ``FeatureRanking`` (``features.py`` + ``ranker.py``) or
  ``RetrievalScoreRanking``;
* ``selector.py``: ``TopKRecommendationSelector``; ``diversity.py``: MMR;
* ``two_stage.py``: ``TwoStage``, retrieval → ranking → selection for a batch;
* ``strategies.py``: personalized, recent items, popularity, similar items, one interface;
* ``model.py``: ``RecommenderModel``, a bundle in memory, wiring the above
  (``model.strategies``, ``model.retrieval_strategies``).
"""

from recommender.features import FeatureAssembler
from recommender.idmap import IdMap
from recommender.ranker import DeepFeatureRanking
from recommender.retrieval import ItemIndex
from recommender.selector import TopKRecommendationSelector

__all__ = ["DeepFeatureRanking", "FeatureAssembler", "IdMap", "ItemIndex", "TopKRecommendationSelector"]
