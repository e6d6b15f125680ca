SELECT A.id, A.itemName, P.city, P.state, A.reserve - A.initialBid AS margin, upper(P.state) || '-' || CAST(A.category AS VARCHAR) AS region
FROM auction AS A
JOIN person AS P ON A.seller = P.id AND A.reserve > A.initialBid + 100
WHERE P.state IN ('OR', 'CA', 'WA')
