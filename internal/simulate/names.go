package simulate

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Names and details the simulator draws from. Common Brazilian first names and
// surnames, real area codes, and the kind of procedures a diagnostic clinic bills.
var (
	femaleNames = []string{
		"Maria", "Ana", "Juliana", "Fernanda", "Patrícia", "Aline", "Camila", "Beatriz",
		"Larissa", "Letícia", "Gabriela", "Mariana", "Luana", "Vitória", "Helena",
		"Francisca", "Antônia", "Adriana", "Sandra", "Cláudia", "Renata", "Débora",
		"Isabela", "Lúcia", "Raquel", "Tatiane", "Bruna", "Natália", "Sofia", "Valéria",
	}
	maleNames = []string{
		"João", "José", "Antônio", "Francisco", "Carlos", "Paulo", "Pedro", "Lucas",
		"Luiz", "Marcos", "Gabriel", "Rafael", "Daniel", "Marcelo", "Bruno", "Eduardo",
		"Felipe", "Rodrigo", "Gustavo", "Thiago", "Mateus", "André", "Fernando", "Ricardo",
		"Sérgio", "Vinícius", "Leandro", "Otávio", "Caio", "Heitor",
	}
	surnames = []string{
		"Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
		"Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes",
		"Soares", "Fernandes", "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento",
		"Andrade", "Moreira", "Nunes", "Marques", "Machado", "Mendes", "Freitas",
		"Cavalcanti", "Araújo", "Monteiro", "Cardoso", "Teixeira", "Correia",
	}
	areaCodes = []int{11, 21, 31, 41, 51, 61, 71, 81, 85, 92}
	notes     = []string{
		"Primeira consulta", "Retorno", "Trazer exames anteriores", "Jejum de 8 horas",
		"Paciente com convênio", "Encaminhado pelo clínico", "Bexiga cheia", "Particular",
	}
)

// catalog is what the simulator adds to an account that has no procedures yet.
var catalog = []struct {
	name  string
	price string
}{
	{"Ultrassom: Abdome Total", "180"},
	{"Ultrassom: Tireoide", "100"},
	{"Ultrassom: Obstétrico", "150"},
	{"Raio-X: Tórax", "99.5"},
	{"Eletrocardiograma", "80.25"},
	{"Ecocardiograma", "320"},
	{"Consulta: Clínico Geral", "250"},
	{"Mamografia", "210"},
}

// person is a made-up patient or doctor.
type person struct {
	name   string // "João Silva"
	female bool
}

func (p person) first() string {
	first, _, _ := strings.Cut(p.name, " ")
	return first
}

func (p person) last() string {
	return p.name[strings.LastIndexByte(p.name, ' ')+1:]
}

// newPerson draws a name: a first name and one or two surnames.
func newPerson(rng *rand.Rand) person {
	female := rng.IntN(2) == 0
	first := pick(rng, maleNames)
	if female {
		first = pick(rng, femaleNames)
	}
	last := pick(rng, surnames)
	name := first + " " + last
	if rng.IntN(10) < 4 {
		middle := pick(rng, surnames)
		for middle == last {
			middle = pick(rng, surnames)
		}
		name = first + " " + middle + " " + last
	}
	return person{name: name, female: female}
}

// doctorName is "Dr. João Silva" or "Dra. Maria Souza".
func doctorName(p person) string {
	title := "Dr."
	if p.female {
		title = "Dra."
	}
	return title + " " + p.first() + " " + p.last()
}

// phone is a Brazilian mobile number as clinics write it: (81) 98765-4321.
func phone(rng *rand.Rand) string {
	return fmt.Sprintf("(%d) 9%04d-%04d", pick(rng, areaCodes), rng.IntN(10000), rng.IntN(10000))
}

// email is first.last@example.com without accents (example.com is reserved: no
// message the clinic app might send to it reaches anyone).
func email(p person, rng *rand.Rand) string {
	local := fold(strings.ToLower(p.first() + "." + p.last()))
	if rng.IntN(3) == 0 {
		local += fmt.Sprint(rng.IntN(90) + 10)
	}
	return local + "@example.com"
}

var accents = strings.NewReplacer(
	"á", "a", "à", "a", "â", "a", "ã", "a", "é", "e", "ê", "e", "í", "i",
	"ó", "o", "ô", "o", "õ", "o", "ú", "u", "ü", "u", "ç", "c",
)

// fold drops the accents of lowercase Portuguese text.
func fold(s string) string { return accents.Replace(s) }

func pick[T any](rng *rand.Rand, list []T) T { return list[rng.IntN(len(list))] }
