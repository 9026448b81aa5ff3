"""Model parts shared by offline training and online serving.

Everything here is pure: numpy, torch and FAISS objects in memory. No web framework, no Redis, no
file formats — the training side and the service import the *same* code, so a score computed
offline is the score the API returns.
"""

from recommender.features import FeatureAssembler
from recommender.idmap import IdMap
from recommender.ranker import DeepFeatureRanking
from recommender.retrieval import ItemIndex
from recommender.selector import TopKRecommendationSelector

__all__ = ["DeepFeatureRanking", "FeatureAssembler", "IdMap", "ItemIndex", "TopKRecommendationSelector"]
