SELECT P.name, P.city, P.state, A.id, A.category
FROM auction AS A
INNER JOIN person AS P ON A.seller = P.id
WHERE A.category IN (10, 11) AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')
